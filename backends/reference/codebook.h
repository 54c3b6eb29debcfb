#pragma once
// The Lloyd-Max codebooks of LloydMax formats (ir::QuantScheme::LloydMax): the
// distortion-optimal levels of a scalar quantizer for a unit Gaussian (Max, 1960),
// at 2, 3 and 4 bits. A rotated vector's coordinates, divided by the vector's RMS,
// are close to N(0, 1), which is why TurboQuant codes them with this table.
//
// Levels are ascending, symmetric about 0 (level[i] = -level[2^bits - 1 - i]);
// code q stands for level[q]. Thresholds are the midpoints of adjacent levels, in
// fp32; a value u is coded as the number of thresholds strictly below it.
// The constants are Max's, to 7 decimals (the fixed point of Lloyd's iteration,
// checked by tests/reference/codebook_test.cpp).
#include <cstdint>
#include <span>

namespace kvc::reference {

// The 2^bits levels; bits in {2, 3, 4} (kvc::Error otherwise).
std::span<const float> lloyd_max_levels(int bits);
// The code of u (the number of thresholds below it).
std::uint8_t lloyd_max_code(float u, int bits);

}  // namespace kvc::reference
