// Backend dispatch: a runtime created with the llvm-jit backend runs generated
// attention kernels and append encoders, and must behave as the reference-backend
// runtime does. Two stores are driven with the same random prompts, tokens and
// queries (every format, retention policy and low-rank kind; head_dim 32..128; GQA
// 1/4/8): at every decode step the attention outputs agree to 1e-5 of their norm,
// the same blocks are held, and every held block has the same bytes. Then the C
// API: backend names, kernel statistics and names, kernels installed by the host.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/llvm/isa.h"
#include "backends/reference/quantize.h"
#include "ir/printer.h"
#include "kvc.h"
#include "runtime/jit_kernels.h"
#include "runtime/plan_builders.h"
#include "runtime/status_error.h"
#include "runtime/store.h"

namespace kvc {
namespace {

using ir::BasisSharing;
using ir::BasisSource;
using ir::RetentionPolicy;

struct Case {
  std::string name;
  int head_dim = 64, kv_heads = 1, g = 1;
  std::int64_t context = 160, prompt = 70;
  std::vector<ir::LayerPlan> layers;
};

std::vector<float> random_values(std::mt19937& rng, std::size_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return x;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Random formats, policies and rank kinds: two layers of different formats, so a
// plan needs more than one kernel.
std::vector<Case> random_cases() {
  std::mt19937 rng(20240611);
  const int bits[] = {16, 8, 4, 3, 2};
  const RetentionPolicy policies[] = {RetentionPolicy::Full, RetentionPolicy::StreamingLLM, RetentionPolicy::H2O,
                                      RetentionPolicy::SnapKV, RetentionPolicy::CAKE};
  const int gqa[] = {1, 4, 8};
  const int head_dims[] = {32, 64, 128};
  std::vector<Case> cases;
  for (int n = 0; n < 15; ++n) {
    Case c;
    c.head_dim = head_dims[rng() % 3];
    c.g = gqa[rng() % 3];
    c.kv_heads = c.g == 8 ? 1 : 2;
    const int group = rng() % 2 ? 64 : 32;
    c.context = 150 + static_cast<std::int64_t>(rng() % 60);
    c.prompt = 60 + static_cast<std::int64_t>(rng() % 30);
    if (c.prompt % group == 0) ++c.prompt;
    const RetentionPolicy policy = policies[n % 5];
    auto layer = [&] {
      const int residual = rng() % 3 == 0 ? 0 : 40;
      return testing::with_retention(testing::kivi_layer(bits[rng() % 5], bits[rng() % 5], group, residual), policy, 100);
    };
    const ir::LayerPlan a = layer(), b = layer();
    switch (n % 4) {
      case 0: c.layers = {a, testing::with_rank(b, 16, BasisSharing::PerLayer, BasisSource::Prefill)}; break;
      case 1: c.layers = {a, testing::with_rank(b, 24, BasisSharing::PerLayer, BasisSource::Calibrated)}; break;
      case 2:
        c.layers = {testing::with_rank(a, 16, BasisSharing::CrossLayer, BasisSource::Prefill, 0),
                    testing::with_rank(a, 16, BasisSharing::CrossLayer, BasisSource::Prefill, 0)};
        break;
      case 3: c.layers = {a, b}; break;
    }
    const ir::LayerPlan& p = c.layers[0];
    c.name = "k" + std::to_string(p.key.bits) + "v" + std::to_string(p.value.bits) + "_" + ir::to_string(policy) +
             "_d" + std::to_string(c.head_dim) + "_g" + std::to_string(c.g) + "_case" + std::to_string(n);
    cases.push_back(c);
  }
  return cases;
}

struct Param {
  Case c;
  ir::KernelIsa isa;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.c.name << "_" << ir::to_string(p.isa); }

std::vector<Param> all_params() {
  std::vector<Param> out;
  const std::vector<Case> cases = random_cases();
  // Every case on the best isa; the narrower code paths on a third of them each.
  for (std::size_t i = 0; i < cases.size(); ++i) {
    out.push_back({cases[i], ir::KernelIsa::Avx512});
    out.push_back({cases[i], i % 3 == 0 ? ir::KernelIsa::Avx2 : i % 3 == 1 ? ir::KernelIsa::Scalar : ir::KernelIsa::Host});
  }
  return out;
}

// The reference-backend store and the llvm-jit store, driven together.
class TwinStores {
 public:
  TwinStores(const Case& c, ir::KernelIsa isa, std::uint32_t seed)
      : c_(c),
        module_(testing::runtime_module(c.head_dim, c.kv_heads, c.g, c.context, 1, c.layers)),
        reference_(module_, runtime::StoreOptions{1, KVC_BACKEND_REFERENCE, ir::KernelIsa::Host}),
        jit_(module_, runtime::StoreOptions{2, KVC_BACKEND_LLVM_JIT, isa}),
        rng_(seed) {
    for (std::size_t l = 0; l < c.layers.size(); ++l) {
      const ir::LowRank& lr = c.layers[l].lowrank;
      if (lr.rank == 0 || lr.source != BasisSource::Calibrated) continue;
      for (int h = 0; h < c.kv_heads; ++h) {
        const std::vector<float> u = random_values(rng_, static_cast<std::size_t>(c.head_dim * lr.rank), 0.2f);
        reference_.set_calibrated_basis(static_cast<int>(l), h, u.data());
        jit_.set_calibrated_basis(static_cast<int>(l), h, u.data());
      }
    }
    ref_seq_ = reference_.create_sequence();
    jit_seq_ = jit_.create_sequence();
  }

  runtime::Store& jit() { return jit_; }

  void prefill() {
    const std::size_t kv_row = static_cast<std::size_t>(c_.kv_heads * c_.head_dim);
    const std::size_t q_row = kv_row * static_cast<std::size_t>(c_.g);
    const std::size_t n = static_cast<std::size_t>(c_.prompt);
    for (int l = 0; l < layers(); ++l) {
      const std::vector<float> k = random_values(rng_, kv_row * n), v = random_values(rng_, kv_row * n);
      reference_.append(l, ref_seq_, k.data(), v.data(), c_.prompt);
      jit_.append(l, jit_seq_, k.data(), v.data(), c_.prompt);
    }
    const std::int64_t n_q = std::min<std::int64_t>(c_.prompt, 8);
    for (int l = 0; l < layers(); ++l) {
      const std::vector<float> window = random_values(rng_, q_row * static_cast<std::size_t>(n_q));
      reference_.end_prefill(l, ref_seq_, window.data(), n_q);
      jit_.end_prefill(l, jit_seq_, window.data(), n_q);
    }
    for (int l = 0; l < layers(); ++l) expect_same_storage(l);
  }

  // One token on every layer: append, attend, compare outputs, blocks and bytes.
  void step() {
    const std::size_t kv_row = static_cast<std::size_t>(c_.kv_heads * c_.head_dim);
    const std::size_t q_row = kv_row * static_cast<std::size_t>(c_.g);
    for (int l = 0; l < layers(); ++l) {
      const std::vector<float> k = random_values(rng_, kv_row), v = random_values(rng_, kv_row);
      const std::vector<float> q = random_values(rng_, q_row);
      reference_.append(l, ref_seq_, k.data(), v.data(), 1);
      jit_.append(l, jit_seq_, k.data(), v.data(), 1);
      std::vector<float> want(q_row), got(q_row, NAN);
      reference_.attend(l, ref_seq_, q.data(), want.data());
      jit_.attend(l, jit_seq_, q.data(), got.data());
      ASSERT_LE(rel_error(got, want), 1e-5) << "layer " << l;
      expect_same_storage(l);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  int layers() const { return static_cast<int>(c_.layers.size()); }

 private:
  void expect_same_storage(int l) {
    const runtime::LayerStore& a = reference_.layer_store(l);
    const runtime::LayerStore& b = jit_.layer_store(l);
    const int sa = reference_.slot_of(ref_seq_), sb = jit_.slot_of(jit_seq_);
    ASSERT_EQ(a.tail_tokens(sa), b.tail_tokens(sb)) << "layer " << l;
    for (int h = 0; h < c_.kv_heads; ++h) {
      ASSERT_EQ(a.block_positions(sa, h), b.block_positions(sb, h)) << "layer " << l << " head " << h;
      for (std::size_t i = 0; i < static_cast<std::size_t>(a.held_blocks(sa, h)); ++i)
        ASSERT_EQ(0, std::memcmp(a.block_data(sa, h, i), b.block_data(sb, h, i), static_cast<std::size_t>(a.block_bytes())))
            << "layer " << l << " head " << h << " block " << i;
    }
  }

  Case c_;
  ir::Module module_;
  runtime::Store reference_, jit_;
  std::mt19937 rng_;
  kvc_seq ref_seq_ = 0, jit_seq_ = 0;
};

class JitDispatch : public ::testing::TestWithParam<Param> {};

TEST_P(JitDispatch, OutputsAndBlocksMatchTheReferenceBackend) {
  const Param& p = GetParam();
  if (!llvm_backend::host_supports(p.isa)) GTEST_SKIP() << "this CPU cannot run " << ir::to_string(p.isa) << " code";
  TwinStores t(p.c, p.isa, 31);
  const kvc_kernel_stats st = t.jit().kernel_stats();
  EXPECT_EQ(st.backend, KVC_BACKEND_LLVM_JIT);
  EXPECT_GE(st.attend_kernels, 1);
  EXPECT_GE(st.append_kernels, 1);
  EXPECT_LE(st.attend_kernels, t.layers());
  t.prefill();
  ASSERT_FALSE(HasFatalFailure());
  for (std::int64_t s = p.c.prompt; s < p.c.context; ++s) {
    t.step();
    ASSERT_FALSE(HasFatalFailure()) << "token " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, JitDispatch, ::testing::ValuesIn(all_params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return info.param.c.name + "_" + ir::to_string(info.param.isa);
                         });

// ---- the C API ---------------------------------------------------------------------

std::string two_layer_plan() {
  const ir::Module m = testing::runtime_module(
      64, 2, 4, 128, 2, {testing::kivi_layer(4, 2, 32, 32), testing::kivi_layer(4, 2, 32, 32)});
  ir::Module mixed = m;
  mixed.layers.push_back(testing::kivi_layer(8, 8, 32, 0));
  mixed.layers.back().index = 2;
  mixed.model.layers = 3;
  return ir::print_module(mixed);
}

TEST(JitDispatchCApi, BackendNamesRoundTrip) {
  for (kvc_backend b : {KVC_BACKEND_REFERENCE, KVC_BACKEND_LLVM_JIT, KVC_BACKEND_LLVM_AOT}) {
    kvc_backend parsed = KVC_BACKEND_REFERENCE;
    ASSERT_EQ(KVC_OK, kvc_backend_from_name(kvc_backend_name(b), &parsed));
    EXPECT_EQ(parsed, b);
  }
  kvc_backend out = KVC_BACKEND_LLVM_AOT;
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_backend_from_name("cuda", &out));
  EXPECT_NE(std::string(kvc_last_error()).find("cuda"), std::string::npos);
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_backend_from_name(nullptr, &out));
}

TEST(JitDispatchCApi, JitRuntimeReportsItsKernelsAndCompileTime) {
  const std::string plan = two_layer_plan();
  kvc_runtime_config config = kvc_runtime_config_default();
  EXPECT_EQ(config.backend, KVC_BACKEND_LLVM_JIT);
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt)) << kvc_last_error();
  kvc_kernel_stats st{};
  ASSERT_EQ(KVC_OK, kvc_kernel_stats_get(rt, &st));
  EXPECT_EQ(st.backend, KVC_BACKEND_LLVM_JIT);
  EXPECT_EQ(st.attend_kernels, 2);  // layers 0 and 1 share one kernel
  EXPECT_EQ(st.append_kernels, 2);
  EXPECT_EQ(st.host_layers, 0);
  EXPECT_GT(st.compile_ms, 0.0);
  const char* attend = nullptr;
  const char* append = nullptr;
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 0, &attend, &append));
  const std::string isa = ir::to_string(llvm_backend::host_isa());
  EXPECT_EQ(std::string(attend), "kvc_attend_k4pc32_v2pt32_d64_g4_" + isa);
  EXPECT_EQ(std::string(append), "kvc_append_k4pc32_v2pt32_d64_" + isa);
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 2, &attend, nullptr));
  EXPECT_EQ(std::string(attend), "kvc_attend_k8pc32_v8pt32_d64_g4_" + isa);
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_layer_kernel_names(rt, 3, &attend, &append));

  // A host kernel replaces one layer's; NULL brings the JIT kernel back.
  const kvc_attend_fn zeros = [](const kvc_attend_args* a) { std::memset(a->out, 0, 4 * 64 * sizeof(float)); };
  ASSERT_EQ(KVC_OK, kvc_set_layer_kernel(rt, 1, zeros));
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 1, &attend, nullptr));
  EXPECT_EQ(std::string(attend), "host");
  ASSERT_EQ(KVC_OK, kvc_kernel_stats_get(rt, &st));
  EXPECT_EQ(st.host_layers, 1);
  ASSERT_EQ(KVC_OK, kvc_set_layer_kernel(rt, 1, nullptr));
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 1, &attend, nullptr));
  EXPECT_EQ(std::string(attend), "kvc_attend_k4pc32_v2pt32_d64_g4_" + isa);
  kvc_runtime_destroy(rt);
}

TEST(JitDispatchCApi, ReferenceAndAotRuntimesRunTheReferenceUntilTheHostInstallsKernels) {
  const std::string plan = two_layer_plan();
  for (kvc_backend b : {KVC_BACKEND_REFERENCE, KVC_BACKEND_LLVM_AOT}) {
    kvc_runtime_config config = kvc_runtime_config_default();
    config.backend = b;
    kvc_runtime* rt = nullptr;
    ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt)) << kvc_last_error();
    kvc_kernel_stats st{};
    ASSERT_EQ(KVC_OK, kvc_kernel_stats_get(rt, &st));
    EXPECT_EQ(st.backend, b);
    EXPECT_EQ(st.attend_kernels, 0);
    EXPECT_EQ(st.compile_ms, 0.0);
    const char* attend = nullptr;
    const char* append = nullptr;
    ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 0, &attend, &append));
    EXPECT_EQ(std::string(attend), "reference");
    EXPECT_EQ(std::string(append), "reference");
    kvc_runtime_destroy(rt);
  }
  // The plain constructors keep the reference backend.
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text(plan.c_str(), nullptr, &rt)) << kvc_last_error();
  kvc_kernel_stats st{};
  ASSERT_EQ(KVC_OK, kvc_kernel_stats_get(rt, &st));
  EXPECT_EQ(st.backend, KVC_BACKEND_REFERENCE);
  kvc_runtime_destroy(rt);
}

// A host encoder (what an AOT host installs): the reference's, counting its calls.
int g_host_encoder_calls = 0;
void host_encoder(const kvc_append_args* a) {
  ++g_host_encoder_calls;
  reference::encode_block(testing::kivi_layer(4, 2, 32, 32), 64, a->k, a->v, a->block);
}

TEST(JitDispatchCApi, HostAppendEncodersAreUsedAndReported) {
  const std::string plan = two_layer_plan();
  kvc_runtime_config config = kvc_runtime_config_default();
  config.backend = KVC_BACKEND_LLVM_AOT;
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt)) << kvc_last_error();
  ASSERT_EQ(KVC_OK, kvc_set_layer_append(rt, 0, host_encoder));
  const char* append = nullptr;
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 0, nullptr, &append));
  EXPECT_EQ(std::string(append), "host");
  kvc_kernel_stats st{};
  ASSERT_EQ(KVC_OK, kvc_kernel_stats_get(rt, &st));
  EXPECT_EQ(st.host_appends, 1);
  kvc_seq seq = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt, &seq));
  std::mt19937 rng(3);
  const std::int64_t n = 100;  // tail of 32: a full tail flushes 32 tokens, at tokens 33, 65 and 97
  const std::vector<float> k = random_values(rng, 2 * 64 * n), v = random_values(rng, 2 * 64 * n);
  g_host_encoder_calls = 0;
  ASSERT_EQ(KVC_OK, kvc_append(rt, 0, seq, k.data(), v.data(), n)) << kvc_last_error();
  EXPECT_EQ(g_host_encoder_calls, 3 * 2);  // three blocks for each of the two KV heads
  // Switching encoders under held blocks is refused; NULL restores the runtime's own.
  EXPECT_EQ(KVC_ERROR_STATE, kvc_set_layer_append(rt, 0, nullptr));
  ASSERT_EQ(KVC_OK, kvc_set_layer_append(rt, 1, host_encoder));
  ASSERT_EQ(KVC_OK, kvc_set_layer_append(rt, 1, nullptr));
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 1, nullptr, &append));
  EXPECT_EQ(std::string(append), "reference");
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_set_layer_append(rt, 5, host_encoder));
  kvc_runtime_destroy(rt);
}

TEST(JitDispatchCApi, BadConfigsAreErrors) {
  const std::string plan = two_layer_plan();
  kvc_runtime* rt = nullptr;
  kvc_runtime_config config = kvc_runtime_config_default();
  config.size = 4;
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt));
  EXPECT_NE(std::string(kvc_last_error()).find("size"), std::string::npos);
  EXPECT_EQ(rt, nullptr);
  config = kvc_runtime_config_default();
  config.backend = static_cast<kvc_backend>(7);
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt));
  config = kvc_runtime_config_default();
  config.isa = static_cast<kvc_isa>(9);
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_runtime_create_from_text_with_config(nullptr, nullptr, &rt));
  EXPECT_EQ(KVC_ERROR_PLAN, kvc_runtime_create_with_config("/nonexistent/plan.kvc", nullptr, &rt));
  EXPECT_EQ(KVC_ERROR_PLAN, kvc_runtime_create_from_text_with_config("module {", nullptr, &rt));
  EXPECT_EQ(rt, nullptr);
  kvc_kernel_stats st{};
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_kernel_stats_get(nullptr, &st));
}

}  // namespace
}  // namespace kvc

namespace kvc::runtime {
namespace {

// Runtimes of the same plan share the process's JIT: the second one runs the very
// code the first compiled (kvc eval creates one runtime per sequence), and its
// statistics still describe the plan's kernels.
TEST(JitKernelsSharing, RuntimesOfOnePlanReuseTheCompiledKernels) {
  using testing::kivi_layer;
  using testing::runtime_module;
  const ir::Module m =
      runtime_module(32, 2, 2, 256, 1, {kivi_layer(4, 2, 32, 32), kivi_layer(4, 2, 32, 32), kivi_layer(8, 8, 32, 32)});
  const JitKernels first(m, ir::KernelIsa::Scalar), second(m, ir::KernelIsa::Scalar);
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ(first.layer(l).attend, second.layer(l).attend) << l;
    EXPECT_EQ(first.layer(l).append, second.layer(l).append) << l;
    EXPECT_EQ(first.layer(l).attend_name, second.layer(l).attend_name) << l;
  }
  EXPECT_EQ(first.layer(0).attend, first.layer(1).attend);
  EXPECT_NE(first.layer(0).attend, first.layer(2).attend);
  EXPECT_EQ(second.attend_kernels(), 2);
  EXPECT_EQ(second.append_kernels(), 2);
  EXPECT_EQ(second.compile_ms(), first.compile_ms());
  EXPECT_GT(second.compile_ms(), 0.0);
}

}  // namespace
}  // namespace kvc::runtime
