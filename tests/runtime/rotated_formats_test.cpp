// Rotated, per-token scale and codebook formats through the C API: the reference
// backend runs them (bytes as ir/layout.h says, outputs as the reference cache
// computes), and the llvm-jit backend refuses them with an error naming the layer.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference_cache.h"
#include "ir/layout.h"
#include "ir/precision.h"
#include "ir/printer.h"
#include "kvc.h"
#include "runtime/plan_builders.h"

namespace kvc {
namespace {

constexpr int kHeadDim = 32, kKvHeads = 2, kG = 3;
constexpr std::int64_t kContext = 120;

ir::LayerPlan layer(const std::string& pair_name, int residual) {
  const ir::PrecisionPair pair = *ir::parse_precision_pair(pair_name);
  ir::LayerPlan p;
  p.key = ir::key_format(pair.key, 32, kHeadDim, 5);
  p.value = ir::value_format(pair.value, 32, kHeadDim, 6);
  p.residual = residual;
  return p;
}

ir::Module module() {
  ir::LayerPlan evicting = layer("K4trV2cr", 16);
  evicting.retention = {ir::RetentionPolicy::H2O, 64, 2, 8, 0, 0.0};
  return testing::runtime_module(kHeadDim, kKvHeads, kG, kContext, /*batch=*/1,
                                 {layer("K4V3cr", 32), evicting, layer("K3tg16V8ar", 0)});
}

std::vector<float> random_values(std::mt19937& rng, std::size_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return x;
}

TEST(RotatedFormatsCApi, ReferenceBackendRunsThemLikeTheReferenceCache) {
  const ir::Module m = module();
  const std::string text = ir::print_module(m);
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text(text.c_str(), nullptr, &rt)) << kvc_last_error();
  kvc_memory_stats mem{};
  ASSERT_EQ(KVC_OK, kvc_memory_stats_get(rt, &mem)) << kvc_last_error();
  EXPECT_EQ(mem.bytes_allocated, ir::total_bytes(m));
  kvc_seq seq = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt, &seq));
  std::mt19937 rng(5);
  const std::size_t kv_row = kKvHeads * kHeadDim, q_row = kKvHeads * kG * kHeadDim;
  for (int l = 0; l < m.model.layers; ++l) {
    reference::ReferenceLayerCache twin(m, l);
    const auto k = random_values(rng, kv_row * 90), v = random_values(rng, kv_row * 90);
    ASSERT_EQ(KVC_OK, kvc_append(rt, l, seq, k.data(), v.data(), 90)) << kvc_last_error();
    ASSERT_EQ(KVC_OK, kvc_end_prefill(rt, l, seq, nullptr, 0)) << kvc_last_error();
    twin.append(k.data(), v.data(), 90);
    twin.end_prefill();
    for (int step = 0; step < 20; ++step) {
      const auto q = random_values(rng, q_row);
      std::vector<float> out(q_row), expected(q_row);
      ASSERT_EQ(KVC_OK, kvc_attend(rt, l, seq, q.data(), out.data())) << kvc_last_error();
      twin.attend(q.data(), expected.data());
      ASSERT_EQ(out, expected) << "layer " << l << " step " << step;
      const auto k1 = random_values(rng, kv_row), v1 = random_values(rng, kv_row);
      ASSERT_EQ(KVC_OK, kvc_append(rt, l, seq, k1.data(), v1.data(), 1)) << kvc_last_error();
      twin.append(k1.data(), v1.data(), 1);
    }
  }
  kvc_runtime_destroy(rt);
}

TEST(RotatedFormatsCApi, LlvmJitRefusesThemNamingTheLayer) {
  const std::string text = ir::print_module(module());
  kvc_runtime_config config = kvc_runtime_config_default();
  ASSERT_EQ(config.backend, KVC_BACKEND_LLVM_JIT);
  kvc_runtime* rt = nullptr;
  EXPECT_EQ(KVC_ERROR_PLAN, kvc_runtime_create_from_text_with_config(text.c_str(), &config, &rt));
  EXPECT_EQ(rt, nullptr);
  const std::string message = kvc_last_error();
  EXPECT_NE(message.find("layer 0"), std::string::npos) << message;
  EXPECT_NE(message.find("lloyd-max"), std::string::npos) << message;
  EXPECT_NE(message.find("target.backend: reference"), std::string::npos) << message;
}

}  // namespace
}  // namespace kvc
