#include "model/matvec.h"

#include <cstddef>

namespace kvc::model {
namespace {

constexpr int kLanes = 16;

// Lanes added pairwise: (0+8, 1+9, ...), then (0+4, ...), (0+2, ...), 0+1.
inline float reduce_lanes(float* acc) {
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  return acc[0];
}

}  // namespace

// FMA contraction would round differently on hosts with and without it; the
// build compiles this file with -ffp-contract=off (model/CMakeLists.txt).
__attribute__((target_clones("avx512f", "avx2", "default")))
void matvec(float* out, const float* w, const float* x, int rows, int cols) {
  const int full = cols - cols % kLanes;
  int r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* w0 = w + static_cast<std::ptrdiff_t>(r) * cols;
    const float* w1 = w0 + cols;
    const float* w2 = w1 + cols;
    const float* w3 = w2 + cols;
    float a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
    for (int c = 0; c < full; c += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float xv = x[c + j];
        a0[j] += w0[c + j] * xv;
        a1[j] += w1[c + j] * xv;
        a2[j] += w2[c + j] * xv;
        a3[j] += w3[c + j] * xv;
      }
    for (int c = full; c < cols; ++c) {
      a0[c - full] += w0[c] * x[c];
      a1[c - full] += w1[c] * x[c];
      a2[c - full] += w2[c] * x[c];
      a3[c - full] += w3[c] * x[c];
    }
    out[r] = reduce_lanes(a0);
    out[r + 1] = reduce_lanes(a1);
    out[r + 2] = reduce_lanes(a2);
    out[r + 3] = reduce_lanes(a3);
  }
  for (; r < rows; ++r) {
    const float* wr = w + static_cast<std::ptrdiff_t>(r) * cols;
    float a[kLanes] = {};
    for (int c = 0; c < full; c += kLanes)
      for (int j = 0; j < kLanes; ++j) a[j] += wr[c + j] * x[c + j];
    for (int c = full; c < cols; ++c) a[c - full] += wr[c] * x[c];
    out[r] = reduce_lanes(a);
  }
}

}  // namespace kvc::model
