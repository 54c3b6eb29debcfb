#pragma once
// The randomized Hadamard transform of rotated formats (ir::Rotation::Hadamard): the
// one definition every encoder and kernel is tested against.
//
// For a vector x of `dims` channels (one token of one KV head):
//   n      = hadamard_block(dims), the largest power of two dividing dims; the
//            channels split into dims / n consecutive blocks of n
//   s_i    = sign i of `seed` (hadamard_signs): -1 when bit 63 of the i-th output of
//            SplitMix64 started at `seed` is set, else +1
//   rotate:    y = H_n (s .* x) / sqrt(n) on each block
//   unrotate:  x = s .* (H_n y) / sqrt(n) on each block
// H_n is the Walsh-Hadamard matrix (H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]]):
// symmetric with H_n H_n = n I, so rotate is orthogonal and unrotate its inverse.
// Applied by the fast transform: stages h = 1, 2, 4, ..., n/2, each replacing the
// pairs (a, b) = (x[j], x[j + h]) of every 2h-run by (a + b, a - b), then the scale.
//
// Numerics. The encoder's rotation (rotate_float) works in fp32 in exactly that
// order, the sign flip and the scale (1/sqrt(n) rounded once to fp32) being single
// multiplies, so any vectorised encoder can reproduce its bytes. The reference
// attention rotates queries and un-rotates outputs in double (rotate / unrotate on
// double), so its own rounding stays far below any format's error.
#include <cstdint>
#include <vector>

namespace kvc::reference {

int hadamard_block(int dims);
std::vector<float> hadamard_signs(std::uint32_t seed, int dims);

// In place on x[0..dims).
void rotate_float(std::uint32_t seed, int dims, float* x);
void rotate(std::uint32_t seed, int dims, double* x);
void unrotate(std::uint32_t seed, int dims, double* x);
void unrotate_float(std::uint32_t seed, int dims, float* x);

}  // namespace kvc::reference
