#include "ir/plan.h"

namespace kvc::ir {

const char* to_string(DType t) {
  switch (t) {
    case DType::F32: return "fp32";
    case DType::F16: return "fp16";
    case DType::BF16: return "bf16";
  }
  return "?";
}
const char* to_string(QuantAxis a) { return a == QuantAxis::PerChannel ? "per-channel" : "per-token"; }
const char* to_string(QuantScheme s) {
  switch (s) {
    case QuantScheme::MinMax: return "minmax";
    case QuantScheme::Symmetric: return "symmetric";
    case QuantScheme::LloydMax: return "lloyd-max";
  }
  return "?";
}
const char* to_string(Rotation r) {
  switch (r) {
    case Rotation::None: return "none";
    case Rotation::Hadamard: return "hadamard";
  }
  return "?";
}
const char* to_string(RetentionPolicy p) {
  switch (p) {
    case RetentionPolicy::Full: return "full";
    case RetentionPolicy::StreamingLLM: return "streamingllm";
    case RetentionPolicy::H2O: return "h2o";
    case RetentionPolicy::SnapKV: return "snapkv";
    case RetentionPolicy::CAKE: return "cake";
  }
  return "?";
}
const char* to_string(BasisSharing s) {
  switch (s) {
    case BasisSharing::None: return "none";
    case BasisSharing::PerLayer: return "layer";
    case BasisSharing::CrossLayer: return "cross-layer";
  }
  return "?";
}
const char* to_string(BasisSource s) { return s == BasisSource::Prefill ? "prefill" : "calibrated"; }
int dtype_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

Module make_uncompressed_module(const ModelShape& model, const Workload& workload, std::int64_t budget_bytes) {
  Module m;
  m.model = model;
  m.workload = workload;
  m.budget_bytes = budget_bytes;
  m.layers.resize(static_cast<std::size_t>(model.layers));
  for (int i = 0; i < model.layers; ++i) m.layers[static_cast<std::size_t>(i)].index = i;
  return m;
}

}  // namespace kvc::ir
