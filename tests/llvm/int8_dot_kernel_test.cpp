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
#include "backends/llvm/kernel_jit.h"
#include "backends/llvm/partial_merge.h"
#include "backends/reference/attention.h"
#include "backends/reference/int8_dot_attention.h"
#include "random_attention_case.h"
#include "support/diagnostics.h"

namespace kvc::llvm_backend {
namespace {

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// How far |got - want| exceeds 1e-5 ||want|| + allow (the reference's
// allowance for weights at rounding ties) at worst; <= 0 when within bounds.
double worst_excess(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& allow) {
  double norm = 0;
  for (float x : want) norm += static_cast<double>(x) * x;
  const double bound = 1e-5 * std::max(std::sqrt(norm), 1e-30);
  double worst = -bound;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]) - bound - allow[i]);
  return worst;
}

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
    ASSERT_TRUE(k.spec.int8_dot);
    ++bits_seen[c.plan().key.bits];
    const std::size_t out_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim);
    const std::size_t probs_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.tokens());
    std::vector<float> want(out_n), allow(out_n), want_p(probs_n), got(out_n, NAN), got_p(probs_n, NAN),
        split(out_n, NAN);
    kvc_attend_args ref_args = c.args(want.data(), want_p.data());
    reference::int8_dot_reference_attend(c.plan(), c.head_dim, c.g, &ref_args, allow.data());
    kvc_attend_args args = c.args(got.data(), got_p.data());
    k.attend(&args);
    EXPECT_LE(worst_excess(got, want, allow), 0.0);
    double worst_p = 0;
    for (std::size_t j = 0; j < probs_n; ++j) worst_p = std::max(worst_p, std::fabs(double(got_p[j]) - want_p[j]));
    EXPECT_LE(worst_p, 1e-5);
    kvc_attend_args split_args = c.args(split.data(), nullptr);
    attend_split(k, split_args, 3, pool);
    EXPECT_LE(worst_excess(split, want, allow), 0.0);
  }
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
    const std::size_t out_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim);
    std::vector<float> exact(out_n), approx(out_n);
    kvc_attend_args a = c.args(exact.data(), nullptr);
    reference::reference_attend(c.plan(), c.head_dim, c.g, &a);
    kvc_attend_args b = c.args(approx.data(), nullptr);
    reference::int8_dot_reference_attend(c.plan(), c.head_dim, c.g, &b);
    const double e = rel_error(approx, exact);
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
