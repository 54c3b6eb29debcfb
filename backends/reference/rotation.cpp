#include "backends/reference/rotation.h"

#include <cmath>

#include "support/diagnostics.h"

namespace kvc::reference {

namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The unnormalised transform H_n on every block of n channels.
template <typename T>
void butterflies(int dims, int n, T* x) {
  for (int base = 0; base < dims; base += n)
    for (int h = 1; h < n; h *= 2)
      for (int j = base; j < base + n; j += 2 * h)
        for (int i = j; i < j + h; ++i) {
          const T a = x[i], b = x[i + h];
          x[i] = a + b;
          x[i + h] = a - b;
        }
}

template <typename T>
void check(int dims, const T* x) {
  if (dims <= 0) throw Error("hadamard rotation: dims must be positive, got " + std::to_string(dims));
  if (!x) throw Error("hadamard rotation: null vector");
}

template <typename T>
void forward(std::uint32_t seed, int dims, T* x) {
  check(dims, x);
  const int n = hadamard_block(dims);
  const std::vector<float> s = hadamard_signs(seed, dims);
  for (int i = 0; i < dims; ++i) x[i] *= static_cast<T>(s[static_cast<std::size_t>(i)]);
  butterflies(dims, n, x);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int i = 0; i < dims; ++i) x[i] *= scale;
}

template <typename T>
void inverse(std::uint32_t seed, int dims, T* x) {
  check(dims, x);
  const int n = hadamard_block(dims);
  const std::vector<float> s = hadamard_signs(seed, dims);
  butterflies(dims, n, x);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int i = 0; i < dims; ++i) x[i] = x[i] * scale * static_cast<T>(s[static_cast<std::size_t>(i)]);
}

}  // namespace

int hadamard_block(int dims) {
  if (dims <= 0) throw Error("hadamard rotation: dims must be positive, got " + std::to_string(dims));
  return dims & -dims;  // the lowest set bit: the largest power of two dividing dims
}

std::vector<float> hadamard_signs(std::uint32_t seed, int dims) {
  std::vector<float> s(static_cast<std::size_t>(dims));
  std::uint64_t state = seed;
  for (float& v : s) v = (splitmix64(state) >> 63) ? -1.0f : 1.0f;
  return s;
}

void rotate_float(std::uint32_t seed, int dims, float* x) { forward(seed, dims, x); }
void rotate(std::uint32_t seed, int dims, double* x) { forward(seed, dims, x); }
void unrotate(std::uint32_t seed, int dims, double* x) { inverse(seed, dims, x); }
void unrotate_float(std::uint32_t seed, int dims, float* x) { inverse(seed, dims, x); }

}  // namespace kvc::reference
