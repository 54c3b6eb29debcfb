#include "backends/reference/codebook.h"

#include <array>
#include <string>

#include "support/diagnostics.h"

namespace kvc::reference {

namespace {

constexpr std::array<float, 4> kLevels2 = {-1.5104176f, -0.4527800f, 0.4527800f, 1.5104176f};
constexpr std::array<float, 8> kLevels3 = {-2.1519457f, -1.3439093f, -0.7560053f, -0.2450942f,
                                           0.2450942f,  0.7560053f,  1.3439093f,  2.1519457f};
constexpr std::array<float, 16> kLevels4 = {-2.7325896f, -2.0690172f, -1.6180464f, -1.2562312f, -0.9423405f, -0.6567591f,
                                            -0.3880483f, -0.1283950f, 0.1283950f,  0.3880483f,  0.6567591f,  0.9423405f,
                                            1.2562312f,  1.6180464f,  2.0690172f,  2.7325896f};

template <std::size_t N>
std::array<float, N - 1> midpoints(const std::array<float, N>& levels) {
  std::array<float, N - 1> t{};
  for (std::size_t i = 0; i + 1 < N; ++i) t[i] = 0.5f * (levels[i] + levels[i + 1]);
  return t;
}

const std::array<float, 3> kThresholds2 = midpoints(kLevels2);
const std::array<float, 7> kThresholds3 = midpoints(kLevels3);
const std::array<float, 15> kThresholds4 = midpoints(kLevels4);

std::span<const float> thresholds(int bits) {
  switch (bits) {
    case 2: return kThresholds2;
    case 3: return kThresholds3;
    case 4: return kThresholds4;
  }
  throw Error("Lloyd-Max codebook: bits must be 2, 3 or 4, got " + std::to_string(bits));
}

}  // namespace

std::span<const float> lloyd_max_levels(int bits) {
  switch (bits) {
    case 2: return kLevels2;
    case 3: return kLevels3;
    case 4: return kLevels4;
  }
  throw Error("Lloyd-Max codebook: bits must be 2, 3 or 4, got " + std::to_string(bits));
}

std::uint8_t lloyd_max_code(float u, int bits) {
  unsigned q = 0;
  for (float t : thresholds(bits)) q += t < u ? 1u : 0u;
  return static_cast<std::uint8_t>(q);
}

}  // namespace kvc::reference
