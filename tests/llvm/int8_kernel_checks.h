#pragma once
// The check shared by the int8-dot kernel tests (keys and values): every case's
// kernel, run whole and split over threads, against the int8-dot reference
// (backends/reference/int8_dot_attention.h), which defines the rounding and gives
// the allowance for weights that sit at a rounding tie.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "backends/llvm/kernel_jit.h"
#include "backends/llvm/partial_merge.h"
#include "backends/reference/attention.h"
#include "backends/reference/int8_dot_attention.h"
#include "random_attention_case.h"

namespace kvc::llvm_backend {

inline double l2_norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// ||got - want|| / ||want||.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
  return std::sqrt(diff) / std::max(l2_norm(want), 1e-30);
}

// The int8-dot reference's relative distance from exact attention on one case.
inline double int8_reference_error(const testing::AttentionCase& c) {
  const std::size_t out_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim);
  std::vector<float> exact(out_n), approx(out_n);
  kvc_attend_args a = c.args(exact.data(), nullptr);
  reference::reference_attend(c.plan(), c.head_dim, c.g, &a);
  kvc_attend_args b = c.args(approx.data(), nullptr);
  reference::int8_dot_reference_attend(c.plan(), c.head_dim, c.g, &b);
  return relative_error(approx, exact);
}

// How far |got - want| exceeds tolerance * ||want|| + allow at worst (<= 0 when
// every element is within its bound).
inline double worst_excess(const std::vector<float>& got, const std::vector<float>& want,
                           const std::vector<float>& allow, double tolerance) {
  const double bound = tolerance * std::max(l2_norm(want), 1e-30);
  double worst = -bound;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]) - bound - allow[i]);
  return worst;
}

// Compiles every case with the int8-dot option for `isa` and expects its output
// within 1e-5 of the reference's norm plus the tie allowance (which must stay a
// few flips, not the output), its probabilities within 1e-5, and the same output
// when the call is split over 3 threads. Returns how many cases had each bit
// width, as `bits_of` reads it (of keys or of values).
inline std::array<int, 9> expect_int8_kernels_match_reference(
    const std::vector<testing::AttentionCase>& cases, ir::KernelIsa isa,
    const std::function<int(const testing::AttentionCase&)>& bits_of) {
  std::vector<ir::KernelSpec> specs;
  for (const auto& c : cases) {
    specs.push_back(ir::lower_layer(c.module, 0, isa));
    specs.back().int8_dot = true;
  }
  KernelJit jit;
  const auto kernels = jit.get_all(specs);
  ThreadPool pool(2);
  std::array<int, 9> bits_seen{};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const CompiledKernel& k = *kernels[i];
    SCOPED_TRACE(k.name + " blocks=" + std::to_string(c.blocks.size()) + " tail=" + std::to_string(c.n_tail));
    EXPECT_TRUE(k.spec.int8_dot);
    ++bits_seen[static_cast<std::size_t>(bits_of(c))];
    const std::size_t out_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim);
    const std::size_t probs_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.tokens());
    std::vector<float> want(out_n), allow(out_n), want_p(probs_n), got(out_n, NAN), got_p(probs_n, NAN),
        split(out_n, NAN);
    kvc_attend_args ref_args = c.args(want.data(), want_p.data());
    reference::int8_dot_reference_attend(c.plan(), c.head_dim, c.g, &ref_args, allow.data());
    EXPECT_LE(l2_norm(allow), 2e-2 * l2_norm(want));
    kvc_attend_args args = c.args(got.data(), got_p.data());
    k.attend(&args);
    EXPECT_LE(worst_excess(got, want, allow, 1e-5), 0.0);
    double worst_p = 0;
    for (std::size_t j = 0; j < probs_n; ++j)
      worst_p = std::max(worst_p, std::fabs(static_cast<double>(got_p[j]) - want_p[j]));
    EXPECT_LE(worst_p, 1e-5);
    kvc_attend_args split_args = c.args(split.data(), nullptr);
    attend_split(k, split_args, 3, pool);
    EXPECT_LE(worst_excess(split, want, allow, 1e-5), 0.0);
  }
  return bits_seen;
}

}  // namespace kvc::llvm_backend
