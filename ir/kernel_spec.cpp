#include "ir/kernel_spec.h"

#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::ir {

const char* to_string(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::Host: return "host";
    case KernelIsa::Scalar: return "scalar";
    case KernelIsa::Avx2: return "avx2";
    case KernelIsa::Avx512: return "avx512";
  }
  return "?";
}

KernelIsa parse_kernel_isa(const std::string& text) {
  for (KernelIsa isa : {KernelIsa::Host, KernelIsa::Scalar, KernelIsa::Avx2, KernelIsa::Avx512})
    if (text == to_string(isa)) return isa;
  throw Error({}, "isa", "unknown instruction set '" + text + "' (expected host, scalar, avx2 or avx512)");
}

namespace {

bool valid_bits(int bits) { return bits == 16 || bits == 8 || bits == 4 || bits == 3 || bits == 2; }

void fail(const std::string& field, const std::string& message) { throw Error({}, field, message); }

void validate_format(const QuantFormat& f, int dims, int block, const std::string& field) {
  if (!valid_bits(f.bits)) fail(field + ".bits", "bits must be 16, 8, 4, 3 or 2, got " + std::to_string(f.bits));
  if (f.bits == 16) {
    if (f.scheme != QuantScheme::MinMax || f.rotation != Rotation::None)
      fail(field + ".scheme", "an fp16 tensor is not coded (scheme minmax, no rotation)");
    return;
  }
  if (f.group <= 0) fail(field + ".group", "group must be positive, got " + std::to_string(f.group));
  if (f.scheme != QuantScheme::MinMax && f.axis != QuantAxis::PerToken)
    fail(field + ".scheme", std::string(to_string(f.scheme)) + " codes are per token; per-channel groups use minmax");
  if (f.scheme == QuantScheme::LloydMax && f.bits != 2 && f.bits != 3 && f.bits != 4)
    fail(field + ".bits", "the Lloyd-Max codebook has 2, 3 or 4 bits, got " + std::to_string(f.bits));
  if (f.axis == QuantAxis::PerChannel) {
    if (f.group != block)
      fail(field + ".group", "per-channel group " + std::to_string(f.group) + " must equal the token block " +
                                 std::to_string(block));
    if (block * f.bits % 8 != 0)
      fail(field + ".group", "per-channel group of " + std::to_string(block) + " " + std::to_string(f.bits) +
                                 "-bit codes is not a whole number of bytes");
  } else {
    if (dims % f.group != 0)
      fail(field + ".group", "per-token group " + std::to_string(f.group) + " does not divide " +
                                 std::to_string(dims) + " channels");
    if (dims * f.bits % 8 != 0)
      fail(field + ".bits", std::to_string(dims) + " " + std::to_string(f.bits) +
                                "-bit codes are not a whole number of bytes");
  }
}

// FNV-1a, folded one field at a time so the hash does not depend on struct padding.
struct Fnv {
  std::uint64_t h = 1469598103934665603ull;
  void add(std::int64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<std::uint64_t>(v >> (8 * i)) & 0xffu;
      h *= 1099511628211ull;
    }
  }
  void add(const QuantFormat& f) {
    add(f.bits);
    add(static_cast<int>(f.axis));
    add(f.group);
    add(static_cast<int>(f.scheme));
    add(static_cast<int>(f.rotation));
    add(static_cast<std::int64_t>(f.seed));
  }
};

std::string format_part(char tensor, const QuantFormat& f) {
  std::string s(1, tensor);
  s += std::to_string(f.bits);
  if (f.bits < 16) {
    s += f.axis == QuantAxis::PerChannel ? "pc" : "pt";
    s += std::to_string(f.group);
    if (f.scheme == QuantScheme::Symmetric) s += "s";
    if (f.scheme == QuantScheme::LloydMax) s += "lm";
    if (f.rotation == Rotation::Hadamard) s += "h" + std::to_string(f.seed);
  }
  return s;
}

}  // namespace

void validate(const KernelSpec& s) {
  if (s.head_dim <= 0 || s.head_dim > 1024)
    fail("head_dim", "head_dim must be in 1..1024, got " + std::to_string(s.head_dim));
  if (s.g <= 0 || s.g > 64) fail("g", "query heads per KV head must be in 1..64, got " + std::to_string(s.g));
  if (s.token_block <= 0 || s.token_block > 1024)
    fail("token_block", "token block must be in 1..1024, got " + std::to_string(s.token_block));
  if (s.lowrank) {
    if (s.key_dims <= 0 || s.key_dims > s.head_dim)
      fail("key_dims", "low-rank key dims must be in 1..head_dim, got " + std::to_string(s.key_dims));
  } else if (s.key_dims != s.head_dim) {
    fail("key_dims", "keys at full rank must have key_dims == head_dim");
  }
  validate_format(s.key, s.key_dims, s.token_block, "key");
  validate_format(s.value, s.head_dim, s.token_block, "value");
  const bool any_per_channel = (s.key.bits < 16 && s.key.axis == QuantAxis::PerChannel) ||
                               (s.value.bits < 16 && s.value.axis == QuantAxis::PerChannel);
  if (!any_per_channel && s.token_block != 1)
    fail("token_block", "token block must be 1 when no tensor is grouped per channel");
  if (s.int8_dot && !supports_int8_dot(s))
    fail("int8_dot", "int8 dot products need keys grouped per channel at 8, 4 or 2 bits (full rank, a multiple "
                     "of 4 channels) or values grouped per token at 8, 4 or 2 bits (group * bits / 8 = 4, 8 or a multiple of 16), "
                     "with a token block that is a multiple of 16 (got " +
                         format_part('k', s.key) + (s.lowrank ? " low rank" : "") + ", " + format_part('v', s.value) +
                         ", " + std::to_string(s.key_dims) + " key channels, block " + std::to_string(s.token_block) +
                         ")");
}

namespace {
bool byte_code_bits(int bits) { return bits == 8 || bits == 4 || bits == 2; }
// The int8-dot kernels read KIVI's min/scale codes of unrotated vectors.
bool kivi_codes(const QuantFormat& f) { return f.scheme == QuantScheme::MinMax && f.rotation == Rotation::None; }
}  // namespace

bool int8_dot_keys(const KernelSpec& s) {
  return byte_code_bits(s.key.bits) && kivi_codes(s.key) && s.key.axis == QuantAxis::PerChannel && !s.lowrank && s.key_dims % 4 == 0 &&
         s.token_block % 16 == 0;
}

bool int8_dot_values(const KernelSpec& s) {
  const int group_bytes = s.value.group * s.value.bits / 8;  // code bytes of one group of one token
  return byte_code_bits(s.value.bits) && kivi_codes(s.value) && s.value.axis == QuantAxis::PerToken && !s.lowrank &&
         s.token_block % 16 == 0 && s.value.group > 0 && s.head_dim % s.value.group == 0 &&
         group_bytes > 0 && (group_bytes == 4 || group_bytes == 8 || group_bytes % 16 == 0);
}

bool supports_int8_dot(const KernelSpec& s) { return int8_dot_keys(s) || int8_dot_values(s); }

std::uint64_t hash(const KernelSpec& s) {
  Fnv f;
  f.add(s.head_dim);
  f.add(s.g);
  f.add(s.key);
  f.add(s.value);
  f.add(s.lowrank ? 1 : 0);
  f.add(s.key_dims);
  f.add(s.token_block);
  f.add(static_cast<int>(s.isa));
  f.add(s.int8_dot ? 1 : 0);
  return f.h;
}

std::string kernel_name(const KernelSpec& s) {
  std::string n = "kvc_attend_" + format_part('k', s.key) + "_" + format_part('v', s.value) + "_d" +
                  std::to_string(s.head_dim) + "_g" + std::to_string(s.g);
  if (s.lowrank) n += "_r" + std::to_string(s.key_dims);
  if (s.int8_dot) n += "_i8";
  n += "_";
  n += to_string(s.isa);
  return n;
}

KernelSpec lower_layer(const Module& m, int layer, KernelIsa isa) {
  if (layer < 0 || layer >= static_cast<int>(m.layers.size()))
    fail("layers", "layer " + std::to_string(layer) + " out of range (module has " +
                       std::to_string(m.layers.size()) + " layers)");
  if (m.model.kv_heads <= 0 || m.model.q_heads <= 0 || m.model.q_heads % m.model.kv_heads != 0)
    fail("model.kv_heads", "q_heads (" + std::to_string(m.model.q_heads) + ") must be a positive multiple of kv_heads (" +
                               std::to_string(m.model.kv_heads) + ")");
  const LayerPlan& p = m.layers[static_cast<std::size_t>(layer)];
  KernelSpec s;
  s.head_dim = m.model.head_dim;
  s.g = m.model.q_heads / m.model.kv_heads;
  s.key = p.key;
  s.value = p.value;
  s.lowrank = p.lowrank.rank > 0;
  s.key_dims = key_dims(p, m.model.head_dim);
  s.token_block = token_block(p);
  s.isa = isa;
  // Fields that do not change the code are canonicalised so equal kernels hash equal.
  if (s.key.bits == 16) s.key = QuantFormat{16, QuantAxis::PerChannel, 32};
  if (s.value.bits == 16) s.value = QuantFormat{16, QuantAxis::PerToken, 32};
  try {
    validate(s);
  } catch (const Error& e) {
    throw Error({}, "layers[" + std::to_string(layer) + "]." + e.field(), e.message());
  }
  return s;
}

LoweredKernels lower_module(const Module& m, KernelIsa isa) {
  LoweredKernels out;
  for (int i = 0; i < static_cast<int>(m.layers.size()); ++i) {
    KernelSpec s = lower_layer(m, i, isa);
    int index = -1;
    for (std::size_t k = 0; k < out.specs.size(); ++k)
      if (out.specs[k] == s) index = static_cast<int>(k);
    if (index < 0) {
      index = static_cast<int>(out.specs.size());
      out.specs.push_back(s);
    }
    out.layer_kernel.push_back(index);
  }
  return out;
}

}  // namespace kvc::ir
