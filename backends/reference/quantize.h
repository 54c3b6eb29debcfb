#pragma once
// Quantization and block encoding of the reference kernels: the one plain
// implementation of the storage format that ir/layout.h describes. Every other
// encoder (runtime store, generated kernels) must produce the same bytes.
//
// Quantization of one group x[0..n) at `bits` in {2, 3, 4, 8}, by scheme:
// MinMax (KIVI asymmetric; scale and min stored):
//   m  = min(x),  s = (max(x) - m) / (2^bits - 1)          (fp32)
//   m' = fp16(m), s' = fp16(s)                              (stored, round to nearest even)
//   inv = 1 / s' in fp32, or 0 when s' == 0
//   q  = clamp(nearbyint((x - m') * inv), 0, 2^bits - 1)     (fp32, current rounding = to even)
//   x^ = q * s' + m'                                         (fp32 multiply, then fp32 add; not fused)
// Symmetric (one scale stored; c = (2^bits - 1) / 2, so levels sit at +-s/2, +-3s/2, ...):
//   a  = max |x|,  s = 2a / (2^bits - 1) (fp32),  s' = fp16(s),  inv as above
//   q  = clamp(nearbyint(x * inv + c), 0, 2^bits - 1)        (fp32 multiply, then fp32 add)
//   x^ = (q - c) * s'                                        (fp32)
// LloydMax (bits 2, 3, 4; one scale stored, the group's RMS):
//   s  = sqrt(sum x^2 / n) (sum in double, rounded to fp32),  s' = fp16(s),  inv as above
//   q  = lloyd_max_code(x * inv, bits)                       (backends/reference/codebook.h)
//   x^ = level[q] * s'                                       (fp32)
//
// Rotated formats (ir::Rotation::Hadamard) code each token's rotated vector
// (rotate_float of backends/reference/rotation.h, in fp32, before quantization);
// decoding gives the vectors in that rotated domain.
//
// Packing: codes form a little-endian bit stream: code i occupies bits
// [i*bits, (i+1)*bits) counting from bit 0 of byte 0, so 3-bit codes cross bytes.
// fp16 values (scales, mins, 16-bit sections) are stored little-endian.
#include <cstddef>
#include <cstdint>

#include "ir/plan.h"

namespace kvc::reference {

// Bytes that n codes of `bits` bits occupy (rounded up to whole bytes).
std::size_t packed_bytes(std::size_t n, int bits);
// Writes codes[0..n) (each < 2^bits) into out[0..packed_bytes(n, bits)).
void pack_codes(const std::uint8_t* codes, std::size_t n, int bits, std::uint8_t* out);
// Code i of a packed stream.
std::uint8_t unpack_code(const std::uint8_t* packed, std::size_t i, int bits);

// The stored parameters of one quantized group.
struct GroupParams {
  std::uint16_t scale = 0;  // fp16 bits of s'
  std::uint16_t min = 0;    // fp16 bits of m' (MinMax; 0 otherwise)
};

// Quantizes x[i*stride] for i in [0, n) into codes[0..n) (one code per byte, unpacked).
GroupParams quantize_group(const float* x, std::size_t n, std::size_t stride, int bits, std::uint8_t* codes);
GroupParams quantize_group(ir::QuantScheme scheme, const float* x, std::size_t n, std::size_t stride, int bits,
                           std::uint8_t* codes);
// x^ of one code.
float dequantize(std::uint8_t code, GroupParams p);
float dequantize(ir::QuantScheme scheme, std::uint8_t code, GroupParams p, int bits);
// The largest |x - x^| the formula allows for a group whose stored parameters are
// p: s'/2 for the rounding, plus what rounding m and s to fp16 can add at the
// clamped ends (half an fp16 ulp of m', and 2^bits - 1 half ulps of s'), plus
// fp32 rounding slack. Computed from the stored parameters alone.
float group_error_bound(GroupParams p, int bits);
// The same for any scheme and a group of n values. Symmetric: s'/2 plus the fp16
// rounding of s' at the outer levels. LloydMax: s' times the larger of half the
// widest gap between levels and the overshoot past the outer level of the largest
// value a group of n can hold (|x| <= sqrt(n) * RMS).
float group_error_bound(ir::QuantScheme scheme, GroupParams p, int bits, std::size_t n);

// fp16 little-endian load/store on unaligned bytes.
void store_half(std::uint8_t* dst, float value);
float load_half(const std::uint8_t* src);

// Encodes one tensor section (ir/layout.h "Main block layout") of `block` tokens
// with `dims` channels from x [block][dims] (token-major fp32) into
// out[0..ir::section_bytes(f, dims, block)).
void encode_section(const ir::QuantFormat& f, int dims, int block, const float* x, std::uint8_t* out);
// Inverse: writes x^ [block][dims] (rotated formats: in the rotated domain). When
// `error_bound` is not null it receives, per element, group_error_bound of its
// group (0 for 16-bit sections).
void decode_section(const ir::QuantFormat& f, int dims, int block, const std::uint8_t* in, float* x,
                    float* error_bound = nullptr);

// One main block of one KV head: K section ([B][key_dims] - coefficients for low
// rank) then V section ([B][head_dim]); B = ir::token_block(plan). Writes
// ir::block_bytes(plan, head_dim) bytes.
void encode_block(const ir::LayerPlan& plan, int head_dim, const float* k, const float* v, std::uint8_t* out);
void decode_block(const ir::LayerPlan& plan, int head_dim, const std::uint8_t* in, float* k, float* v,
                  float* k_error_bound = nullptr, float* v_error_bound = nullptr);

// Throws kvc::Error unless the reference can store `f` for `dims` channels and
// blocks of `block` tokens (bits in {16, 8, 4, 3, 2}, group > 0, whole bytes per
// packed run, PerToken groups dividing dims, Symmetric and LloydMax per token,
// LloydMax at 2, 3 or 4 bits, a seed only with a rotation, nothing coded at 16
// bits). `what` names the tensor in the message.
void check_format(const ir::QuantFormat& f, int dims, int block, const char* what);

}  // namespace kvc::reference
