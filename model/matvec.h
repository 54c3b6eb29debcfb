#pragma once
// out[r] = W[r] . x for a row-major W [rows][cols]: the forward pass's one hot loop.
//
// The summation order is fixed and independent of the ISA the code runs on: lane j
// of 16 accumulates w[c] * x[c] for c = j mod 16 in increasing c, then the 16 lanes
// are added in a fixed tree. The loop is compiled for AVX-512, AVX2 and baseline
// x86-64 (function multiversioning picks one at load) without fused multiply-adds,
// so every host computes the same bits; four rows share each load of x.
namespace kvc::model {

void matvec(float* out, const float* w, const float* x, int rows, int cols);

}  // namespace kvc::model
