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
#include "backends/llvm/kernel_jit.h"
#include "backends/llvm/partial_merge.h"
#include "backends/reference/attention.h"
#include "backends/reference/int8_dot_attention.h"
#include "random_attention_case.h"

namespace kvc::llvm_backend {
namespace {

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// The largest amount by which |got - want| exceeds tolerance * ||want|| + allowance
// (<= 0 when every element is within its bound).
double worst_excess(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& allow,
                    double tolerance) {
  const double bound = tolerance * std::max(norm(want), 1e-30);
  double worst = -bound;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]) - bound - allow[i]);
  return worst;
}

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
  std::vector<ir::KernelSpec> specs;
  for (const auto& c : cases) {
    specs.push_back(ir::lower_layer(c.module, 0, isa));
    specs.back().int8_dot = true;
  }
  KernelJit jit;
  const auto kernels = jit.get_all(specs);
  ThreadPool pool(2);
  int bits_seen[9] = {};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const CompiledKernel& k = *kernels[i];
    SCOPED_TRACE(k.name + " blocks=" + std::to_string(c.blocks.size()) + " tail=" + std::to_string(c.n_tail));
    ++bits_seen[c.plan().value.bits];
    const std::size_t out_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim);
    const std::size_t probs_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.tokens());
    std::vector<float> want(out_n), allow(out_n), want_p(probs_n), got(out_n, NAN), got_p(probs_n, NAN),
        split(out_n, NAN);
    kvc_attend_args ref_args = c.args(want.data(), want_p.data());
    reference::int8_dot_reference_attend(c.plan(), c.head_dim, c.g, &ref_args, allow.data());
    // The allowance covers a few rounding flips, not the output.
    EXPECT_LE(norm(allow), 2e-2 * norm(want));
    kvc_attend_args args = c.args(got.data(), got_p.data());
    k.attend(&args);
    EXPECT_LE(worst_excess(got, want, allow, 1e-5), 0.0);
    double worst_p = 0;
    for (std::size_t j = 0; j < probs_n; ++j) worst_p = std::max(worst_p, std::fabs(double(got_p[j]) - want_p[j]));
    EXPECT_LE(worst_p, 1e-5);
    kvc_attend_args split_args = c.args(split.data(), nullptr);
    attend_split(k, split_args, 3, pool);
    EXPECT_LE(worst_excess(split, want, allow, 1e-5), 0.0);
  }
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
    const std::size_t out_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim);
    std::vector<float> exact(out_n), approx(out_n);
    kvc_attend_args a = c.args(exact.data(), nullptr);
    reference::reference_attend(c.plan(), c.head_dim, c.g, &a);
    kvc_attend_args b = c.args(approx.data(), nullptr);
    reference::int8_dot_reference_attend(c.plan(), c.head_dim, c.g, &b);
    double diff = 0;
    for (std::size_t i = 0; i < out_n; ++i) diff += (double(approx[i]) - exact[i]) * (double(approx[i]) - exact[i]);
    const double e = std::sqrt(diff) / std::max(norm(exact), 1e-30);
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
