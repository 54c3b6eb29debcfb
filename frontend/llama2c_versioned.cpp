// llama2.c's versioned export (magic "ak42"): version 1 (fp32) and version 2
// (int8 codes with one fp32 scale per group, what runq.c reads). Layout: llama2c.h.
#include <cmath>
#include <cstring>
#include <fstream>

#include "frontend/binary_file.h"
#include "frontend/llama2c.h"
#include "support/diagnostics.h"

namespace kvc::frontend {
namespace {

constexpr std::uint32_t kMagic = 0x616b3432;  // "ak42" read as a little-endian uint32
constexpr std::int64_t kVersionAt = 4, kShapeAt = 8, kSharedAt = 36, kGroupAt = 37;

// Bytes a tensor of `count` weights takes: fp32, or int8 codes plus a scale per group.
std::int64_t tensor_bytes(const std::string& path, const Llama2cHeader& h, std::int64_t count) {
  if (h.version == 1) return checked_mul(path, 0, count, 4);
  return checked_add(path, 0, count, checked_mul(path, 0, count / h.group_size, 4));
}

// A tensor stacked over `parts` layers (or 1): each part is encoded on its own.
struct Stacked {
  std::int64_t parts, per_part;
};

// Every weight tensor after the norms, in file order.
std::vector<Stacked> weight_tensors(const Llama2cHeader& h, const Llama2cTensorSizes& s) {
  const std::int64_t L = h.layers;
  std::vector<Stacked> t = {{1, s.embedding}, {L, s.wq / L}, {L, s.wk / L}, {L, s.wv / L},
                            {L, s.wo / L},    {L, s.w1 / L}, {L, s.w2 / L}, {L, s.w3 / L}};
  if (!h.shared_classifier) t.push_back({1, s.wcls});
  return t;
}

std::int64_t file_bytes(const std::string& path, const Llama2cHeader& h, const Llama2cTensorSizes& s) {
  std::int64_t total = kLlama2cVersionedHeaderBytes;
  const std::int64_t norms = s.rms_att + s.rms_ffn + s.rms_final;
  total = checked_add(path, 0, total, checked_mul(path, 0, norms, 4));
  for (const Stacked& t : weight_tensors(h, s))
    total = checked_add(path, 0, total, checked_mul(path, 0, t.parts, tensor_bytes(path, h, t.per_part)));
  return total;
}

Llama2cHeader parse_header(const std::string& path, const unsigned char* b, std::int64_t file_size) {
  std::uint32_t magic = 0;
  std::memcpy(&magic, b, 4);
  if (magic != kMagic) fail_at_offset(path, 0, "not a versioned llama2.c checkpoint (magic \"ak42\" expected)");
  std::int32_t version = 0;
  std::memcpy(&version, b + kVersionAt, 4);
  if (version != 1 && version != 2)
    fail_at_offset(path, kVersionAt,
                   "llama2.c export version " + std::to_string(version) +
                       " is not supported (versions 1 (fp32) and 2 (int8), and the legacy header-less layout)");
  std::int32_t f[7];
  std::memcpy(f, b + kShapeAt, sizeof f);
  if (f[5] <= 0)
    fail_at_offset(path, kShapeAt + 20,
                   "header field vocab_size is " + std::to_string(f[5]) +
                       ", expected a positive value (the versioned header marks a separate classifier with its "
                       "shared_classifier byte)");
  Llama2cHeader h = llama2c_shape_from_fields(path, f, kShapeAt);
  h.version = version;
  if (b[kSharedAt] > 1)
    fail_at_offset(path, kSharedAt,
                   "shared_classifier is " + std::to_string(b[kSharedAt]) + ", expected 0 or 1");
  h.shared_classifier = b[kSharedAt] == 1;
  if (version == 2) {
    std::int32_t group = 0;
    std::memcpy(&group, b + kGroupAt, 4);
    if (group <= 0) fail_at_offset(path, kGroupAt, "group size " + std::to_string(group) + ", expected a positive value");
    h.group_size = group;
    // export.py quantizes each layer's tensor in whole groups; so must the reader.
    const Llama2cTensorSizes s = llama2c_tensor_sizes(path, h);
    for (const Stacked& t : weight_tensors(h, s))
      if (t.per_part % group != 0)
        fail_at_offset(path, kGroupAt,
                       "group size " + std::to_string(group) + " does not divide a tensor of " +
                           std::to_string(t.per_part) + " weights (dim " + std::to_string(h.dim) + ", hidden " +
                           std::to_string(h.hidden) + ")");
  }
  const std::int64_t expected = file_bytes(path, h, llama2c_tensor_sizes(path, h));
  if (expected != file_size) fail_llama2c_size(path, h, expected, file_size);
  return h;
}

}  // namespace

bool has_llama2c_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint32_t magic = 0;
  in.read(reinterpret_cast<char*>(&magic), 4);
  return in.gcount() == 4 && magic == kMagic;
}

Llama2cHeader read_llama2c_versioned_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  const std::int64_t file_size = file_size_of(path);
  if (file_size < kLlama2cVersionedHeaderBytes)
    fail_at_offset(path, file_size,
                   "file ends inside the 256-byte llama2.c version header (the file has " +
                       std::to_string(file_size) + " bytes)");
  unsigned char b[kLlama2cVersionedHeaderBytes];
  in.read(reinterpret_cast<char*>(b), sizeof b);
  if (!in) fail_at_offset(path, 0, "cannot read the llama2.c header");
  return parse_header(path, b, file_size);
}

Llama2cCheckpoint read_llama2c_versioned_checkpoint(const std::string& path) {
  Llama2cCheckpoint ck;
  ck.header = read_llama2c_versioned_header(path);  // validates the size against the header
  const Llama2cHeader& h = ck.header;
  const Llama2cTensorSizes s = llama2c_tensor_sizes(path, h);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  in.seekg(kLlama2cVersionedHeaderBytes);
  std::int64_t offset = kLlama2cVersionedHeaderBytes;
  auto read_bytes = [&](void* out, std::int64_t n) {
    in.read(static_cast<char*>(out), n);
    if (!in) fail_at_offset(path, offset, "cannot read " + std::to_string(n) + " bytes of tensor data");
    offset += n;
  };
  auto read_f32 = [&](std::vector<float>& out, std::int64_t count) {
    out.resize(static_cast<std::size_t>(count));
    read_bytes(out.data(), count * 4);
  };
  // One layer's tensor into out[first, first + count): fp32, or codes then scales.
  std::vector<std::int8_t> codes;
  std::vector<float> scales;
  auto read_part = [&](float* out, std::int64_t count) {
    if (h.version == 1) return read_bytes(out, count * 4);
    codes.resize(static_cast<std::size_t>(count));
    read_bytes(codes.data(), count);
    const std::int64_t scales_at = offset;
    scales.resize(static_cast<std::size_t>(count / h.group_size));
    read_bytes(scales.data(), static_cast<std::int64_t>(scales.size()) * 4);
    for (std::size_t g = 0; g < scales.size(); ++g)
      if (!std::isfinite(scales[g]))
        fail_at_offset(path, scales_at + static_cast<std::int64_t>(4 * g), "a weight group's scale is not finite");
    for (std::int64_t i = 0; i < count; ++i) out[i] = static_cast<float>(codes[i]) * scales[i / h.group_size];
  };
  auto read_weights = [&](std::vector<float>& out, Stacked t) {
    out.resize(static_cast<std::size_t>(t.parts * t.per_part));
    for (std::int64_t p = 0; p < t.parts; ++p) read_part(out.data() + p * t.per_part, t.per_part);
  };
  read_f32(ck.rms_att, s.rms_att);
  read_f32(ck.rms_ffn, s.rms_ffn);
  read_f32(ck.rms_final, s.rms_final);
  const std::vector<Stacked> t = weight_tensors(h, s);
  std::vector<float>* const order[] = {&ck.token_embedding, &ck.wq, &ck.wk, &ck.wv, &ck.wo,
                                       &ck.w1,              &ck.w2, &ck.w3, &ck.wcls};
  for (std::size_t i = 0; i < t.size(); ++i) read_weights(*order[i], t[i]);
  return ck;
}

}  // namespace kvc::frontend
