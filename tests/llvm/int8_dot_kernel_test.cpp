// Kernels with the int8-dot option (ir::KernelSpec::int8_dot) against the int8-dot
// reference (backends/reference/int8_dot_attention.h) on randomized cases, for
// every isa this CPU can run; and the reference against the exact one, so that
// the option is known to stay an approximation of the same attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "backends/llvm/isa.h"
#include "backends/reference/int8_dot_attention.h"
#include "int8_kernel_checks.h"
#include "random_attention_case.h"
#include "support/diagnostics.h"

namespace kvc::llvm_backend {
namespace {

// Random cases whose keys admit int8 dot products (about a third of a sweep).
std::vector<testing::AttentionCase> int8_cases(int wanted) {
  std::mt19937 rng(99);
  std::vector<testing::AttentionCase> out;
  for (int i = 0; static_cast<int>(out.size()) < wanted && i < 4000; ++i) {
    auto c = testing::random_attention_case(i, rng);
    if (ir::int8_dot_keys(ir::lower_layer(c.module, 0))) out.push_back(std::move(c));
  }
  return out;
}

class Int8DotKernel : public ::testing::TestWithParam<ir::KernelIsa> {};

TEST_P(Int8DotKernel, MatchesInt8ReferenceOnRandomCases) {
  const ir::KernelIsa isa = GetParam();
  if (!host_supports(isa)) GTEST_SKIP() << "this CPU cannot run " << ir::to_string(isa) << " kernels";
  const auto cases = int8_cases(18);
  ASSERT_EQ(cases.size(), 18u);
  const auto bits_seen =
      expect_int8_kernels_match_reference(cases, isa, [](const testing::AttentionCase& c) { return c.plan().key.bits; });
  EXPECT_GT(bits_seen[8], 0);
  EXPECT_GT(bits_seen[4], 0);
  EXPECT_GT(bits_seen[2], 0);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Int8DotKernel,
                         ::testing::Values(ir::KernelIsa::Avx512, ir::KernelIsa::Avx2, ir::KernelIsa::Scalar),
                         [](const auto& info) { return std::string(ir::to_string(info.param)); });

// The int8 query costs accuracy, but boundedly: a 7-bit query moves each score by
// up to ~0.4% of its largest term, which on these peaked random cases (scores of
// tens) moves the output by a few percent; and it is not the exact attention (the
// option is live). Its cost on a real model is measured in KL by `kvc eval`.
TEST(Int8DotReference, ApproximatesExactAttention) {
  double worst = 0, total = 0;
  for (const auto& c : int8_cases(30)) {
    const double e = int8_reference_error(c);
    worst = std::max(worst, e);
    total += e;
  }
  std::printf("int8 query vs exact: worst relative error %.2e, sum %.2e\n", worst, total);
  EXPECT_LT(worst, 0.15);
  EXPECT_GT(total, 1e-6);
}

TEST(Int8DotReference, RejectsPlansWithoutByteCodeKeys) {
  std::mt19937 rng(5);
  const auto c = testing::random_attention_case(0, rng);  // fp16 keys
  std::vector<float> out(static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim));
  kvc_attend_args a = c.args(out.data(), nullptr);
  EXPECT_THROW(reference::int8_dot_reference_attend(c.plan(), c.head_dim, c.g, &a), Error);
}

}  // namespace
}  // namespace kvc::llvm_backend
