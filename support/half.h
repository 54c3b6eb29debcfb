#pragma once
// IEEE binary16 conversion. Every full-precision cache element, scale and minimum
// in kvc is stored as fp16; conversions round to nearest, ties to even, so the
// reference kernels, the runtime and the generated kernels agree bit for bit.
#include <cstdint>

namespace kvc {

std::uint16_t float_to_half(float f);

namespace detail {
// Every fp16 value's float, computed once: the reference kernels read stored fp16
// elements one at a time, so the conversion is a table lookup.
const float* half_to_float_table();
}  // namespace detail

inline float half_to_float(std::uint16_t h) {
  static const float* const table = detail::half_to_float_table();
  return table[h];
}

// Rounds f through fp16 and back: the value a stored fp16 element will read as.
inline float round_to_half(float f) { return half_to_float(float_to_half(f)); }

}  // namespace kvc
