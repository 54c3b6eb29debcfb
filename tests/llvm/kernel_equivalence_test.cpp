// Generated kernels against the reference kernels (backends/reference) on
// randomized shapes and formats, for every isa this CPU can run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "backends/llvm/isa.h"
#include "backends/llvm/kernel_jit.h"
#include "backends/llvm/partial_merge.h"
#include "backends/reference/attention.h"
#include "random_attention_case.h"
#include "support/diagnostics.h"

namespace kvc::llvm_backend {
namespace {

constexpr int kCases = 75;  // three sweeps over the 25 (key bits, value bits) pairs

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

class KernelEquivalence : public ::testing::TestWithParam<ir::KernelIsa> {};

TEST_P(KernelEquivalence, MatchesReferenceOnRandomCases) {
  const ir::KernelIsa isa = GetParam();
  if (!host_supports(isa)) GTEST_SKIP() << "this CPU cannot run " << ir::to_string(isa) << " kernels";
  std::mt19937 rng(1234);
  std::vector<testing::AttentionCase> cases;
  std::vector<ir::KernelSpec> specs;
  for (int i = 0; i < kCases; ++i) {
    cases.push_back(testing::random_attention_case(i, rng));
    specs.push_back(ir::lower_layer(cases.back().module, 0, isa));
  }
  KernelJit jit;
  const auto kernels = jit.get_all(specs);
  std::printf("compiled %d kernels in %.0f ms\n", jit.stats().kernels, jit.stats().compile_ms);
  ThreadPool pool(2);
  for (int i = 0; i < kCases; ++i) {
    const auto& c = cases[static_cast<std::size_t>(i)];
    const CompiledKernel& k = *kernels[static_cast<std::size_t>(i)];
    SCOPED_TRACE(c.describe());
    EXPECT_EQ(k.spec.isa, isa);
    const std::size_t out_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.head_dim);
    const std::size_t probs_n = static_cast<std::size_t>(c.g) * static_cast<std::size_t>(c.tokens());
    std::vector<float> want(out_n), want_p(probs_n), got(out_n, NAN), got_p(probs_n, NAN), split(out_n, NAN);
    kvc_attend_args ref_args = c.args(want.data(), want_p.data());
    reference::reference_attend(c.plan(), c.head_dim, c.g, &ref_args);

    kvc_attend_args args = c.args(got.data(), got_p.data());
    k.attend(&args);
    EXPECT_LE(rel_error(got, want), 1e-5);
    double worst_p = 0;
    for (std::size_t j = 0; j < probs_n; ++j) worst_p = std::max(worst_p, std::fabs(double(got_p[j]) - want_p[j]));
    EXPECT_LE(worst_p, 1e-5);  // float scores of up to ~30 carry ~2e-6 absolute error

    // Without probs, and split into three block ranges merged afterwards.
    std::vector<float> plain(out_n, NAN);
    kvc_attend_args no_probs = c.args(plain.data(), nullptr);
    k.attend(&no_probs);
    EXPECT_LE(rel_error(plain, want), 1e-5);
    kvc_attend_args split_args = c.args(split.data(), nullptr);
    attend_split(k, split_args, 3, pool);
    EXPECT_LE(rel_error(split, want), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KernelEquivalence,
                         ::testing::Values(ir::KernelIsa::Avx512, ir::KernelIsa::Avx2, ir::KernelIsa::Scalar),
                         [](const auto& info) { return std::string(ir::to_string(info.param)); });

TEST(KernelJitCache, CompilesEachSpecOnce) {
  std::mt19937 rng(7);
  const auto c = testing::random_attention_case(12, rng);
  const ir::KernelSpec spec = ir::lower_layer(c.module, 0);
  KernelJit jit;
  const CompiledKernel& a = jit.get(spec);
  const CompiledKernel& b = jit.get(spec);
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(jit.stats().kernels, 1);
  EXPECT_EQ(jit.stats().cache_hits, 1);
  EXPECT_GT(jit.stats().compile_ms, 0.0);
  EXPECT_EQ(a.spec.isa, host_isa());
}

TEST(KernelJitCache, RejectsInvalidSpecs) {
  ir::KernelSpec s;
  s.head_dim = 64;
  s.key_dims = 64;
  s.key = {5, ir::QuantAxis::PerChannel, 32};
  s.token_block = 32;
  KernelJit jit;
  EXPECT_THROW(jit.get(s), Error);
}

TEST(MergePartials, EmptyStatesGiveZeros) {
  const int g = 2, d = 4;
  std::vector<float> s(partial_state_floats(g, d), 0.0f);
  s[0] = s[1] = -INFINITY;
  const float* states[] = {s.data(), s.data()};
  std::vector<float> out(g * d, NAN);
  merge_partials(g, d, states, 2, out.data());
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace kvc::llvm_backend
