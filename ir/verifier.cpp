#include "ir/verifier.h"

#include <cmath>
#include <map>

#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::ir {

namespace {

bool is_named(DType v) { return std::string_view(to_string(v)) != "?"; }
bool is_named(RetentionPolicy v) { return std::string_view(to_string(v)) != "?"; }
bool is_named(BasisSharing v) { return std::string_view(to_string(v)) != "?"; }
bool is_named(QuantAxis v) { return v == QuantAxis::PerChannel || v == QuantAxis::PerToken; }
bool is_named(BasisSource v) { return v == BasisSource::Prefill || v == BasisSource::Calibrated; }
bool is_named(QuantScheme v) { return std::string_view(to_string(v)) != "?"; }
bool is_named(Rotation v) { return std::string_view(to_string(v)) != "?"; }

bool valid_bits(int bits) { return bits == 16 || bits == 8 || bits == 4 || bits == 3 || bits == 2; }
bool valid_group(int g) { return g == 8 || g == 16 || g == 32 || g == 64 || g == 128; }

class Checker {
 public:
  explicit Checker(const Module& m) : m_(m) {}

  std::vector<Diagnostic> run() {
    check_module();
    for (int i = 0; i < static_cast<int>(m_.layers.size()); ++i) check_layer(i);
    check_basis_groups();
    return std::move(out_);
  }

 private:
  void report(int layer, std::string field, std::string message) {
    out_.push_back({layer, std::move(field), std::move(message)});
  }

  void check_module() {
    const ModelShape& s = m_.model;
    const Workload& w = m_.workload;
    if (s.layers < 1) report(-1, "model.layers", std::to_string(s.layers) + ": a model has at least 1 layer");
    if (static_cast<std::int64_t>(m_.layers.size()) != s.layers) {
      report(-1, "model.layers",
             "the module has " + std::to_string(m_.layers.size()) + " layer plans but model.layers is " +
                 std::to_string(s.layers));
    }
    if (s.kv_heads < 1) report(-1, "model.kv_heads", std::to_string(s.kv_heads) + ": must be >= 1");
    if (s.q_heads < 1) {
      report(-1, "model.q_heads", std::to_string(s.q_heads) + ": must be >= 1");
    } else if (s.kv_heads >= 1 && s.q_heads % s.kv_heads != 0) {
      report(-1, "model.q_heads",
             std::to_string(s.q_heads) + " is not a multiple of kv_heads " + std::to_string(s.kv_heads) +
                 " (each KV head serves a whole number of query heads)");
    }
    if (s.head_dim < 1) report(-1, "model.head_dim", std::to_string(s.head_dim) + ": must be >= 1");
    if (!std::isfinite(s.rope_theta) || !(s.rope_theta > 0)) {
      report(-1, "model.rope_theta", "must be a finite number > 0");
    }
    if (!is_named(s.cache_dtype)) report(-1, "model.cache", "is not a known dtype (fp16, bf16, fp32)");
    if (w.context < 1) report(-1, "workload.context", std::to_string(w.context) + ": must be >= 1");
    if (w.batch < 1) report(-1, "workload.batch", std::to_string(w.batch) + ": must be >= 1");
    if (w.generate < 0 || (w.context >= 1 && w.generate >= w.context)) {
      report(-1, "workload.generate",
             std::to_string(w.generate) + ": must be >= 0 and less than context " + std::to_string(w.context) +
                 " (the prompt holds at least one token)");
    }
    if (s.layers >= 1 && s.kv_heads >= 1 && s.head_dim >= 1 && w.context >= 1 && w.batch >= 1) {
      std::int64_t bytes = 4;
      bool overflow = false;
      for (std::int64_t f : {std::int64_t{s.layers}, w.batch, std::int64_t{s.kv_heads}, w.context,
                             std::int64_t{s.head_dim}}) {
        overflow = overflow || __builtin_mul_overflow(bytes, f, &bytes);
      }
      if (overflow) {
        report(-1, "workload", "the uncompressed cache (layers x batch x kv_heads x context x head_dim x 4 bytes) "
                               "does not fit in 64 bits");
      }
    }
    if (m_.budget_bytes < 0) report(-1, "budget.bytes", std::to_string(m_.budget_bytes) + ": must be >= 0");
  }

  void check_quant(int layer, const char* name, const QuantFormat& f, int dims, bool low_rank) {
    const std::string field(name);
    if (!valid_bits(f.bits)) {
      report(layer, field + ".bits", std::to_string(f.bits) + " is not one of 16, 8, 4, 3, 2");
      return;
    }
    check_scheme(layer, field, f, low_rank);
    if (f.bits == 16) return;
    if (!is_named(f.axis)) report(layer, field + ".axis", "is not per-channel or per-token");
    // A per-token group may also span the whole vector (one scale per token and head).
    const bool whole_vector = f.axis == QuantAxis::PerToken && f.group == dims && dims >= 1;
    if (!valid_group(f.group) && !whole_vector) {
      report(layer, field + ".group",
             std::to_string(f.group) + " is not one of 8, 16, 32, 64, 128" +
                 (f.axis == QuantAxis::PerToken ? " or the " + std::to_string(dims) + " channels of the vector" : ""));
      return;
    }
    if (f.axis == QuantAxis::PerToken && dims >= 1 && dims % f.group != 0) {
      report(layer, field + ".group",
             "per-token group " + std::to_string(f.group) + " does not divide the " + std::to_string(dims) +
                 " channels it groups");
    }
  }

  // Scheme and rotation: what the reference quantizers and the rotation define.
  void check_scheme(int layer, const std::string& field, const QuantFormat& f, bool low_rank) {
    if (!is_named(f.scheme)) report(layer, field + ".scheme", "is not minmax, symmetric or lloyd-max");
    if (!is_named(f.rotation)) report(layer, field + ".rotation", "is not none or hadamard");
    if (f.rotation == Rotation::None && f.seed != 0)
      report(layer, field + ".rotation.seed", std::to_string(f.seed) + ": a seed without a rotation (must be 0)");
    if (f.bits == 16) {
      if (f.scheme != QuantScheme::MinMax || f.rotation != Rotation::None)
        report(layer, field + ".scheme", "an fp16 tensor is not coded: scheme minmax and no rotation");
      return;
    }
    if (f.scheme != QuantScheme::MinMax && f.axis != QuantAxis::PerToken)
      report(layer, field + ".scheme",
             std::string(to_string(f.scheme)) + " codes are per token; per-channel groups use minmax (KIVI)");
    if (f.scheme == QuantScheme::LloydMax && f.bits != 2 && f.bits != 3 && f.bits != 4)
      report(layer, field + ".bits", std::to_string(f.bits) + ": the Lloyd-Max codebook has 2, 3 or 4 bits");
    if (f.rotation == Rotation::Hadamard && low_rank)
      report(layer, field + ".rotation", "low-rank key coefficients are not rotated (rotate full-rank keys only)");
  }

  void check_layer(int i) {
    const LayerPlan& p = m_.layers[static_cast<std::size_t>(i)];
    const int head_dim = m_.model.head_dim;
    if (p.index != i) {
      report(i, "index", "is " + std::to_string(p.index) + " but this is layer plan " + std::to_string(i) +
                             " (layers are listed in order 0..L-1)");
    }

    // Low rank first: the key dims a per-token K group must divide depend on it.
    const LowRank& lr = p.lowrank;
    bool rank_ok = true;
    if (!is_named(lr.sharing)) {
      report(i, "rank.sharing", "is not none, layer or cross-layer");
      rank_ok = false;
    } else if (lr.sharing == BasisSharing::None) {
      if (lr.rank != 0) {
        report(i, "rank", std::to_string(lr.rank) + " with sharing none: keys at full head_dim have rank 0");
        rank_ok = false;
      }
      if (lr.basis_group != -1) report(i, "rank.group", std::to_string(lr.basis_group) + ": must be -1 without a basis");
    } else {
      if (lr.rank == 0) {
        report(i, "rank", std::string("0 with sharing ") + to_string(lr.sharing) + ": a basis needs rank >= 1");
        rank_ok = false;
      } else if (lr.rank < 0 || (head_dim >= 1 && lr.rank > head_dim)) {
        report(i, "rank", std::to_string(lr.rank) + " is not in 1.." + std::to_string(head_dim) + " (head_dim)");
        rank_ok = false;
      }
      if (!is_named(lr.source)) report(i, "rank.source", "is not prefill or calibrated");
      if (lr.sharing == BasisSharing::CrossLayer && lr.basis_group < 0) {
        report(i, "rank.group", std::to_string(lr.basis_group) + ": a cross-layer basis group id is >= 0");
      }
      if (lr.sharing == BasisSharing::PerLayer && lr.basis_group != -1) {
        report(i, "rank.group", std::to_string(lr.basis_group) + ": must be -1 for a per-layer basis");
      }
    }

    const int kdims = rank_ok && head_dim >= 1 ? key_dims(p, head_dim) : 0;
    check_quant(i, "k", p.key, kdims, lr.rank > 0);
    check_quant(i, "v", p.value, head_dim, false);

    const bool k_channel = p.key.bits < 16 && p.key.axis == QuantAxis::PerChannel;
    const bool v_channel = p.value.bits < 16 && p.value.axis == QuantAxis::PerChannel;
    if (k_channel && v_channel && p.key.group != p.value.group) {
      report(i, "v.group",
             std::to_string(p.value.group) + " differs from k.group " + std::to_string(p.key.group) +
                 ": K and V both quantized per channel must share one token block");
    }
    const bool groups_ok = (!k_channel || valid_group(p.key.group)) && (!v_channel || valid_group(p.value.group)) &&
                           valid_bits(p.key.bits) && valid_bits(p.value.bits);
    const int block = groups_ok ? token_block(p) : 0;
    if (p.residual < 0) {
      report(i, "residual", std::to_string(p.residual) + ": must be >= 0");
    } else if (block > 0 && p.residual % block != 0) {
      report(i, "residual",
             std::to_string(p.residual) + " is not a multiple of the token block " + std::to_string(block) +
                 " (the per-channel group size)");
    }
    check_retention(i, p, groups_ok);
  }

  void check_retention(int i, const LayerPlan& p, bool groups_ok) {
    const Retention& r = p.retention;
    const std::int64_t context = m_.workload.context;
    if (!is_named(r.policy)) {
      report(i, "keep", "is not a known retention policy");
      return;
    }
    if (r.policy == RetentionPolicy::Full) {
      if (r.budget != 0) report(i, "keep.budget", std::to_string(r.budget) + ": full retention keeps every token; budget must be 0");
      return;
    }
    const std::int64_t floor = std::max<std::int64_t>(1, groups_ok && p.residual >= 0 ? tail_capacity(p) : 1);
    if (r.budget < floor) {
      report(i, "keep.budget",
             std::to_string(r.budget) + " is below " + std::to_string(floor) +
                 (floor > 1 ? ", the fp16 tail capacity (the tail is never evicted)" : ": keep at least 1 token"));
    } else if (context >= 1 && r.budget > context) {
      report(i, "keep.budget",
             std::to_string(r.budget) + " is more than workload.context " + std::to_string(context));
    }
    const std::string policy = to_string(r.policy);
    switch (r.policy) {
      case RetentionPolicy::StreamingLLM:
      case RetentionPolicy::H2O:
        if (r.sink < 0) report(i, "keep.sink", std::to_string(r.sink) + ": must be >= 0");
        if (r.window < 0) report(i, "keep.window", std::to_string(r.window) + ": must be >= 0");
        if (r.sink >= 0 && r.window >= 0 && std::int64_t{r.sink} + r.window > r.budget) {
          report(i, "keep.budget",
                 "sink " + std::to_string(r.sink) + " + window " + std::to_string(r.window) + " exceeds the budget " +
                     std::to_string(r.budget) + " (" + policy + " always keeps both)");
        }
        break;
      case RetentionPolicy::SnapKV:
        if (r.window < 1) report(i, "keep.window", std::to_string(r.window) + ": snapkv observes at least 1 query");
        if (r.pool < 1 || r.pool % 2 == 0) {
          report(i, "keep.pool", std::to_string(r.pool) + ": the pooling kernel is odd and >= 1 (1 = no pooling)");
        }
        break;
      case RetentionPolicy::CAKE:
        if (r.window < 1) report(i, "keep.window", std::to_string(r.window) + ": cake observes at least 1 query");
        if (!std::isfinite(r.gamma) || r.gamma < 0) report(i, "keep.gamma", "must be a finite number >= 0");
        if (r.pool < 1 || r.pool % 2 == 0) {
          report(i, "keep.pool", std::to_string(r.pool) + ": the pooling kernel is odd and >= 1 (1 = no pooling)");
        }
        break;
      case RetentionPolicy::Full: break;
    }
  }

  // Layers of one cross-layer group read one basis, so they must be adjacent and agree on it.
  void check_basis_groups() {
    std::map<int, int> first_of_group;  // basis_group -> first layer position
    for (int i = 0; i < static_cast<int>(m_.layers.size()); ++i) {
      const LowRank& lr = m_.layers[static_cast<std::size_t>(i)].lowrank;
      if (lr.sharing != BasisSharing::CrossLayer || lr.basis_group < 0) continue;
      const auto [it, inserted] = first_of_group.emplace(lr.basis_group, i);
      if (inserted) continue;
      const int first = it->second;
      const LowRank& prev = m_.layers[static_cast<std::size_t>(i - 1)].lowrank;
      const std::string group = "cross-layer group " + std::to_string(lr.basis_group);
      if (prev.sharing != BasisSharing::CrossLayer || prev.basis_group != lr.basis_group) {
        report(i, "rank.group",
               group + " is not contiguous: it began at layer " + std::to_string(first) + " but layer " +
                   std::to_string(i - 1) + " is not in it");
      }
      const LowRank& head = m_.layers[static_cast<std::size_t>(first)].lowrank;
      if (lr.rank != head.rank) {
        report(i, "rank",
               std::to_string(lr.rank) + " differs from rank " + std::to_string(head.rank) + " of layer " +
                   std::to_string(first) + " in " + group + " (they share one basis)");
      }
      if (lr.source != head.source) {
        report(i, "rank.source",
               std::string(to_string(lr.source)) + " differs from " + to_string(head.source) + " of layer " +
                   std::to_string(first) + " in " + group);
      }
    }
  }

  const Module& m_;
  std::vector<Diagnostic> out_;
};

}  // namespace

std::string Diagnostic::to_string() const {
  std::string out;
  if (layer >= 0) out = "layer " + std::to_string(layer) + ": ";
  return out + field + ": " + message;
}

std::vector<Diagnostic> verify_module(const Module& m) { return Checker(m).run(); }

void verify_or_throw(const Module& m, std::string_view file) {
  const std::vector<Diagnostic> problems = verify_module(m);
  if (problems.empty()) return;
  const Diagnostic& d = problems.front();
  std::string field = d.layer >= 0 ? "layer " + std::to_string(d.layer) + ": " + d.field : d.field;
  std::string message = d.message;
  if (problems.size() > 1) {
    message += " (and " + std::to_string(problems.size() - 1) + " more problem" + (problems.size() > 2 ? "s" : "") + ")";
  }
  throw Error({std::string(file), 0, 0}, std::move(field), std::move(message));
}

}  // namespace kvc::ir
