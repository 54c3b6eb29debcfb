#include "backends/reference/quantize.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends/reference/codebook.h"
#include "backends/reference/rotation.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {

std::size_t packed_bytes(std::size_t n, int bits) { return (n * static_cast<std::size_t>(bits) + 7) / 8; }

void pack_codes(const std::uint8_t* codes, std::size_t n, int bits, std::uint8_t* out) {
  std::fill(out, out + packed_bytes(n, bits), std::uint8_t{0});
  for (std::size_t i = 0; i < n; ++i) {
    // Bit by bit: slow, but the bit stream order is then obvious.
    for (int b = 0; b < bits; ++b) {
      if ((codes[i] >> b) & 1u) {
        const std::size_t bit = i * static_cast<std::size_t>(bits) + static_cast<std::size_t>(b);
        out[bit / 8] = static_cast<std::uint8_t>(out[bit / 8] | (1u << (bit % 8)));
      }
    }
  }
}

std::uint8_t unpack_code(const std::uint8_t* packed, std::size_t i, int bits) {
  unsigned code = 0;
  for (int b = 0; b < bits; ++b) {
    const std::size_t bit = i * static_cast<std::size_t>(bits) + static_cast<std::size_t>(b);
    code |= ((packed[bit / 8] >> (bit % 8)) & 1u) << b;
  }
  return static_cast<std::uint8_t>(code);
}

GroupParams quantize_group(const float* x, std::size_t n, std::size_t stride, int bits, std::uint8_t* codes) {
  float lo = x[0], hi = x[0];
  for (std::size_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i * stride]);
    hi = std::max(hi, x[i * stride]);
  }
  const float levels = static_cast<float>((1 << bits) - 1);
  GroupParams p;
  p.min = float_to_half(lo);
  p.scale = float_to_half((hi - lo) / levels);
  const float m = half_to_float(p.min);
  const float s = half_to_float(p.scale);
  const float inv = s != 0.0f ? 1.0f / s : 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const float q = std::nearbyint((x[i * stride] - m) * inv);
    codes[i] = static_cast<std::uint8_t>(std::clamp(q, 0.0f, levels));
  }
  return p;
}

float dequantize(std::uint8_t code, GroupParams p) {
  const float product = static_cast<float>(code) * half_to_float(p.scale);
  return product + half_to_float(p.min);
}

namespace {

float inverse_scale(float s) { return s != 0.0f ? 1.0f / s : 0.0f; }

GroupParams quantize_symmetric(const float* x, std::size_t n, std::size_t stride, int bits, std::uint8_t* codes) {
  float a = 0.0f;
  for (std::size_t i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i * stride]));
  const float levels = static_cast<float>((1 << bits) - 1);
  const float centre = 0.5f * levels;
  GroupParams p;
  p.scale = float_to_half(2.0f * a / levels);
  const float inv = inverse_scale(half_to_float(p.scale));
  for (std::size_t i = 0; i < n; ++i) {
    const float product = x[i * stride] * inv;
    codes[i] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(product + centre), 0.0f, levels));
  }
  return p;
}

GroupParams quantize_lloyd_max(const float* x, std::size_t n, std::size_t stride, int bits, std::uint8_t* codes) {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i * stride]) * x[i * stride];
  const float rms = static_cast<float>(std::sqrt(sum / static_cast<double>(n)));
  GroupParams p;
  p.scale = float_to_half(rms);
  const float inv = inverse_scale(half_to_float(p.scale));
  for (std::size_t i = 0; i < n; ++i) codes[i] = lloyd_max_code(x[i * stride] * inv, bits);
  return p;
}

}  // namespace

GroupParams quantize_group(ir::QuantScheme scheme, const float* x, std::size_t n, std::size_t stride, int bits,
                           std::uint8_t* codes) {
  switch (scheme) {
    case ir::QuantScheme::MinMax: return quantize_group(x, n, stride, bits, codes);
    case ir::QuantScheme::Symmetric: return quantize_symmetric(x, n, stride, bits, codes);
    case ir::QuantScheme::LloydMax: return quantize_lloyd_max(x, n, stride, bits, codes);
  }
  throw Error("quantize: unknown scheme " + std::to_string(static_cast<int>(scheme)));
}

float dequantize(ir::QuantScheme scheme, std::uint8_t code, GroupParams p, int bits) {
  switch (scheme) {
    case ir::QuantScheme::MinMax: return dequantize(code, p);
    case ir::QuantScheme::Symmetric: {
      const float centre = 0.5f * static_cast<float>((1 << bits) - 1);
      return (static_cast<float>(code) - centre) * half_to_float(p.scale);
    }
    case ir::QuantScheme::LloydMax: return lloyd_max_levels(bits)[code] * half_to_float(p.scale);
  }
  throw Error("dequantize: unknown scheme " + std::to_string(static_cast<int>(scheme)));
}

namespace {
// Half the spacing of fp16 values around |h| (at least the subnormal spacing).
float half_ulp_of_half(float h) {
  const float a = std::fabs(h);
  if (a < 6.103515625e-05f) return 0x1p-25f;
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): binade 2^(e-1), spacing 2^(e-1-10)
  return std::ldexp(1.0f, e - 12);
}
}  // namespace

float group_error_bound(GroupParams p, int bits) {
  const float s = half_to_float(p.scale);
  const float m = half_to_float(p.min);
  const float levels = static_cast<float>((1 << bits) - 1);
  const float span = std::fabs(m) + (levels + 1.0f) * s;
  return 0.5f * s + half_ulp_of_half(m) + levels * half_ulp_of_half(s) + 1e-6f * span;
}

float group_error_bound(ir::QuantScheme scheme, GroupParams p, int bits, std::size_t n) {
  const float s = half_to_float(p.scale);
  switch (scheme) {
    case ir::QuantScheme::MinMax: return group_error_bound(p, bits);
    case ir::QuantScheme::Symmetric: {
      const float centre = 0.5f * static_cast<float>((1 << bits) - 1);
      return 0.5f * s + (centre + 1.0f) * half_ulp_of_half(s) + 1e-6f * (centre + 1.0f) * s;
    }
    case ir::QuantScheme::LloydMax: {
      const auto levels = lloyd_max_levels(bits);
      float gap = 0.0f;
      for (std::size_t i = 0; i + 1 < levels.size(); ++i) gap = std::max(gap, levels[i + 1] - levels[i]);
      // s' may round below the RMS by half an fp16 ulp, stretching x / s' by that much.
      const float reach = std::sqrt(static_cast<float>(n)) * (1.0f + 0x1p-10f);
      return s * std::max(0.5f * gap, reach - levels.back()) + 1e-6f * reach * s;
    }
  }
  throw Error("group_error_bound: unknown scheme");
}

void store_half(std::uint8_t* dst, float value) {
  const std::uint16_t h = float_to_half(value);
  dst[0] = static_cast<std::uint8_t>(h & 0xffu);
  dst[1] = static_cast<std::uint8_t>(h >> 8);
}

float load_half(const std::uint8_t* src) {
  return half_to_float(static_cast<std::uint16_t>(src[0] | (src[1] << 8)));
}

namespace {
void store_params(std::uint8_t* scale_dst, std::uint8_t* min_dst, GroupParams p) {
  scale_dst[0] = static_cast<std::uint8_t>(p.scale & 0xffu);
  scale_dst[1] = static_cast<std::uint8_t>(p.scale >> 8);
  if (!min_dst) return;  // schemes without a minimum
  min_dst[0] = static_cast<std::uint8_t>(p.min & 0xffu);
  min_dst[1] = static_cast<std::uint8_t>(p.min >> 8);
}
GroupParams load_params(const std::uint8_t* scale_src, const std::uint8_t* min_src) {
  GroupParams p;
  p.scale = static_cast<std::uint16_t>(scale_src[0] | (scale_src[1] << 8));
  if (min_src) p.min = static_cast<std::uint16_t>(min_src[0] | (min_src[1] << 8));
  return p;
}
}  // namespace

void check_format(const ir::QuantFormat& f, int dims, int block, const char* what) {
  const std::string name(what);
  if (f.rotation != ir::Rotation::None && f.rotation != ir::Rotation::Hadamard)
    throw Error(name + ": unknown rotation " + std::to_string(static_cast<int>(f.rotation)));
  if (f.rotation == ir::Rotation::None && f.seed != 0)
    throw Error(name + ": a rotation seed (" + std::to_string(f.seed) + ") without a rotation");
  if (f.bits == 16) {
    if (f.scheme != ir::QuantScheme::MinMax || f.rotation != ir::Rotation::None)
      throw Error(name + ": an fp16 tensor is not coded (scheme minmax, no rotation)");
    return;
  }
  if (f.bits != 8 && f.bits != 4 && f.bits != 3 && f.bits != 2)
    throw Error(name + ": bits must be 16, 8, 4, 3 or 2, got " + std::to_string(f.bits));
  if (f.scheme != ir::QuantScheme::MinMax && f.scheme != ir::QuantScheme::Symmetric &&
      f.scheme != ir::QuantScheme::LloydMax)
    throw Error(name + ": unknown quantization scheme " + std::to_string(static_cast<int>(f.scheme)));
  if (f.scheme == ir::QuantScheme::LloydMax && f.bits == 8)
    throw Error(name + ": the Lloyd-Max codebook has 2, 3 or 4 bits, got 8");
  if (f.group <= 0) throw Error(name + ": quantization group must be positive, got " + std::to_string(f.group));
  if (f.axis == ir::QuantAxis::PerChannel) {
    if (f.scheme != ir::QuantScheme::MinMax)
      throw Error(name + ": " + ir::to_string(f.scheme) + " codes are per token; per-channel groups use minmax");
    if (f.group != block)
      throw Error(name + ": per-channel group " + std::to_string(f.group) + " differs from the token block " +
                  std::to_string(block) + " (K and V per-channel groups must agree)");
    if (static_cast<long>(block) * f.bits % 8 != 0)
      throw Error(name + ": per-channel group of " + std::to_string(block) + " tokens at " +
                  std::to_string(f.bits) + " bits is not a whole number of bytes");
  } else {
    if (dims % f.group != 0)
      throw Error(name + ": per-token group " + std::to_string(f.group) + " does not divide " +
                  std::to_string(dims) + " channels");
    if (static_cast<long>(dims) * f.bits % 8 != 0)
      throw Error(name + ": " + std::to_string(dims) + " channels at " + std::to_string(f.bits) +
                  " bits is not a whole number of bytes");
  }
}

namespace {
// x [block][dims], each token's vector rotated when the format says so.
std::vector<float> coded_domain(const ir::QuantFormat& f, int dims, int block, const float* x) {
  std::vector<float> out(x, x + static_cast<std::size_t>(dims) * static_cast<std::size_t>(block));
  if (f.rotation == ir::Rotation::Hadamard)
    for (int t = 0; t < block; ++t) rotate_float(f.seed, dims, out.data() + static_cast<std::size_t>(t) * dims);
  return out;
}
}  // namespace

void encode_section(const ir::QuantFormat& f, int dims, int block, const float* x_in, std::uint8_t* out) {
  const std::size_t d = static_cast<std::size_t>(dims), b = static_cast<std::size_t>(block);
  if (f.bits >= 16) {
    for (std::size_t i = 0; i < b * d; ++i) store_half(out + 2 * i, x_in[i]);
    return;
  }
  const std::vector<float> rotated = coded_domain(f, dims, block, x_in);
  const float* x = rotated.data();
  const bool has_min = f.scheme == ir::QuantScheme::MinMax;
  std::vector<std::uint8_t> codes(std::max(b, d));
  if (f.axis == ir::QuantAxis::PerChannel) {
    // scale[dims], min[dims], then each channel's `block` codes packed.
    std::uint8_t* scales = out;
    std::uint8_t* mins = out + 2 * d;
    std::uint8_t* packed = out + (has_min ? 4 : 2) * d;
    const std::size_t run = packed_bytes(b, f.bits);
    for (std::size_t c = 0; c < d; ++c) {
      const GroupParams p = quantize_group(f.scheme, x + c, b, d, f.bits, codes.data());
      store_params(scales + 2 * c, has_min ? mins + 2 * c : nullptr, p);
      pack_codes(codes.data(), b, f.bits, packed + c * run);
    }
    return;
  }
  // PerToken: per token, scale[dims/G], min[dims/G] (MinMax), then the token's dims codes packed.
  const std::size_t g = static_cast<std::size_t>(f.group), n_groups = d / g;
  const std::size_t params = has_min ? 4 : 2;
  const std::size_t token_bytes = n_groups * params + packed_bytes(d, f.bits);
  for (std::size_t t = 0; t < b; ++t) {
    std::uint8_t* tok = out + t * token_bytes;
    for (std::size_t j = 0; j < n_groups; ++j) {
      const GroupParams p = quantize_group(f.scheme, x + t * d + j * g, g, 1, f.bits, codes.data() + j * g);
      store_params(tok + 2 * j, has_min ? tok + 2 * n_groups + 2 * j : nullptr, p);
    }
    pack_codes(codes.data(), d, f.bits, tok + params * n_groups);
  }
}

void decode_section(const ir::QuantFormat& f, int dims, int block, const std::uint8_t* in, float* x,
                    float* error_bound) {
  const std::size_t d = static_cast<std::size_t>(dims), b = static_cast<std::size_t>(block);
  if (f.bits >= 16) {
    for (std::size_t i = 0; i < b * d; ++i) {
      x[i] = load_half(in + 2 * i);
      if (error_bound) error_bound[i] = 0.0f;
    }
    return;
  }
  const bool has_min = f.scheme == ir::QuantScheme::MinMax;
  if (f.axis == ir::QuantAxis::PerChannel) {
    const std::size_t run = packed_bytes(b, f.bits);
    const std::uint8_t* packed = in + (has_min ? 4 : 2) * d;
    for (std::size_t c = 0; c < d; ++c) {
      const GroupParams p = load_params(in + 2 * c, has_min ? in + 2 * d + 2 * c : nullptr);
      const float bound = group_error_bound(f.scheme, p, f.bits, b);
      for (std::size_t t = 0; t < b; ++t) {
        x[t * d + c] = dequantize(f.scheme, unpack_code(packed + c * run, t, f.bits), p, f.bits);
        if (error_bound) error_bound[t * d + c] = bound;
      }
    }
    return;
  }
  const std::size_t g = static_cast<std::size_t>(f.group), n_groups = d / g;
  const std::size_t params = has_min ? 4 : 2;
  const std::size_t token_bytes = n_groups * params + packed_bytes(d, f.bits);
  for (std::size_t t = 0; t < b; ++t) {
    const std::uint8_t* tok = in + t * token_bytes;
    for (std::size_t c = 0; c < d; ++c) {
      const std::size_t j = c / g;
      const GroupParams p = load_params(tok + 2 * j, has_min ? tok + 2 * n_groups + 2 * j : nullptr);
      x[t * d + c] = dequantize(f.scheme, unpack_code(tok + params * n_groups, c, f.bits), p, f.bits);
      if (error_bound) error_bound[t * d + c] = group_error_bound(f.scheme, p, f.bits, g);
    }
  }
}

void encode_block(const ir::LayerPlan& plan, int head_dim, const float* k, const float* v, std::uint8_t* out) {
  const int b = ir::token_block(plan);
  const int kd = ir::key_dims(plan, head_dim);
  encode_section(plan.key, kd, b, k, out);
  encode_section(plan.value, head_dim, b, v, out + ir::section_bytes(plan.key, kd, b));
}

void decode_block(const ir::LayerPlan& plan, int head_dim, const std::uint8_t* in, float* k, float* v,
                  float* k_error_bound, float* v_error_bound) {
  const int b = ir::token_block(plan);
  const int kd = ir::key_dims(plan, head_dim);
  decode_section(plan.key, kd, b, in, k, k_error_bound);
  decode_section(plan.value, head_dim, b, in + ir::section_bytes(plan.key, kd, b), v, v_error_bound);
}

}  // namespace kvc::reference
