// Int8-dot VALUES (ir::int8_dot_values): kernels against the int8-dot reference,
// which defines how the softmax weights are rounded
// (backends/reference/int8_dot_attention.h), for every isa this CPU can run; and
// that reference against exact attention, so the definition cannot silently drift.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backends/llvm/isa.h"
#include "backends/reference/int8_dot_attention.h"
#include "int8_kernel_checks.h"
#include "random_attention_case.h"

namespace kvc::llvm_backend {
namespace {

// Random cases whose values admit int8 dot products; `values_only`: and whose keys do not.
std::vector<testing::AttentionCase> value_cases(int wanted, bool values_only, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<testing::AttentionCase> out;
  for (int i = 0; static_cast<int>(out.size()) < wanted && i < 20000; ++i) {
    auto c = testing::random_attention_case(i, rng);
    const ir::KernelSpec s = ir::lower_layer(c.module, 0);
    if (ir::int8_dot_values(s) && (!values_only || !ir::int8_dot_keys(s)) && !c.blocks.empty())
      out.push_back(std::move(c));
  }
  return out;
}

class Int8Values : public ::testing::TestWithParam<ir::KernelIsa> {};

TEST_P(Int8Values, KernelsMatchTheReferenceWithinTheTieAllowance) {
  const ir::KernelIsa isa = GetParam();
  if (!host_supports(isa)) GTEST_SKIP() << "this CPU cannot run " << ir::to_string(isa) << " kernels";
  const auto cases = value_cases(24, false, 1234);
  ASSERT_EQ(cases.size(), 24u);
  const auto bits_seen =
      expect_int8_kernels_match_reference(cases, isa, [](const testing::AttentionCase& c) { return c.plan().value.bits; });
  EXPECT_GT(bits_seen[8], 0);
  EXPECT_GT(bits_seen[4], 0);
  EXPECT_GT(bits_seen[2], 0);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Int8Values,
                         ::testing::Values(ir::KernelIsa::Avx512, ir::KernelIsa::Avx2, ir::KernelIsa::Scalar),
                         [](const auto& info) { return std::string(ir::to_string(info.param)); });

// With exact keys, the only approximation is the rounding of the weights to 8
// bits per block, head and group (relative step 1/255, or 1/127 for 8-bit
// codes). Its error is measured against the output, which on flat random
// softmaxes is small next to the values it averages: about half a percent on
// average, a few percent at worst; and it is not exact (the option is live).
TEST(Int8ValuesReference, ApproximatesExactAttention) {
  double worst = 0, total = 0;
  const auto cases = value_cases(30, true, 77);
  ASSERT_EQ(cases.size(), 30u);
  for (const auto& c : cases) {
    const double e = int8_reference_error(c);
    worst = std::max(worst, e);
    total += e;
  }
  std::printf("int8 values vs exact: worst relative error %.2e, sum %.2e\n", worst, total);
  EXPECT_LT(worst, 3e-2);
  EXPECT_LT(total / static_cast<double>(cases.size()), 1e-2);
  EXPECT_GT(total, 1e-6);
}

}  // namespace
}  // namespace kvc::llvm_backend
