// kvc_runtime_config.int8_dot: the llvm-jit runtime lowers exactly the layers
// ir::supports_int8_dot allows with the int8-dot kernel option (their kernel names
// gain "_i8"), leaves the other layers and every append encoder alone, and rejects
// the flag for backends that generate no kernels. Hosts built against the config
// before the field was appended (a smaller `size`) still create runtimes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "ir/printer.h"
#include "kvc.h"
#include "runtime/plan_builders.h"

namespace kvc {
namespace {

constexpr int kHeadDim = 64, kKvHeads = 2, kGroup = 2;

// Layer 0: per-channel 4-bit keys (eligible). Layer 1: per-token 4-bit keys, and
// layer 2: fp16 keys (neither eligible: the option needs per-channel key codes).
std::string mixed_plan() {
  ir::LayerPlan per_token = testing::kivi_layer(4, 4, 32, 32);
  per_token.key.axis = ir::QuantAxis::PerToken;
  ir::LayerPlan fp16 = testing::kivi_layer(16, 16, 32, 32);
  return ir::print_module(testing::runtime_module(kHeadDim, kKvHeads, kGroup, 256, 1,
                                                  {testing::kivi_layer(4, 2, 32, 32), per_token, fp16}));
}

kvc_runtime* create(const kvc_runtime_config& config) {
  kvc_runtime* rt = nullptr;
  const std::string plan = mixed_plan();
  EXPECT_EQ(KVC_OK, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt)) << kvc_last_error();
  return rt;
}

bool has_i8(const char* name) { return std::string(name).find("_i8_") != std::string::npos; }

TEST(Int8DotConfig, LowersOnlyEligibleLayersToI8Kernels) {
  kvc_runtime_config config = kvc_runtime_config_default();
  config.backend = KVC_BACKEND_LLVM_JIT;
  EXPECT_EQ(config.int8_dot, 0);
  config.int8_dot = 1;
  kvc_runtime* rt = create(config);
  ASSERT_NE(rt, nullptr);
  for (int layer = 0; layer < 3; ++layer) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    const char* attend = nullptr;
    const char* append = nullptr;
    ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, layer, &attend, &append));
    EXPECT_EQ(has_i8(attend), layer == 0) << attend;
    EXPECT_EQ(std::string(append).find("_i8"), std::string::npos) << append;
  }
  const char* attend = nullptr;
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 0, &attend, nullptr));
  EXPECT_EQ(std::string(attend).rfind("kvc_attend_k4pc32_v2pt32_d64_g2_i8_", 0), 0u) << attend;
  kvc_runtime_destroy(rt);

  config.int8_dot = 0;
  rt = create(config);
  ASSERT_NE(rt, nullptr);
  for (int layer = 0; layer < 3; ++layer) {
    ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, layer, &attend, nullptr));
    EXPECT_FALSE(has_i8(attend)) << "layer " << layer << ": " << attend;
  }
  kvc_runtime_destroy(rt);
}

// Same cache, same queries: the int8-dot layer's output is close to the exact
// kernel's (the query is rounded to 8 bits) but not equal; the other layers' are equal.
TEST(Int8DotConfig, ChangesOnlyTheEligibleLayersOutputsAndOnlySlightly) {
  kvc_runtime_config config = kvc_runtime_config_default();
  config.backend = KVC_BACKEND_LLVM_JIT;
  kvc_runtime* exact = create(config);
  config.int8_dot = 1;
  kvc_runtime* int8 = create(config);
  ASSERT_TRUE(exact && int8);
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto random = [&](std::size_t n) {
    std::vector<float> x(n);
    for (float& e : x) e = dist(rng);
    return x;
  };
  const std::int64_t prompt = 150;  // four 32-token blocks per KV head, the rest in the tail
  const std::size_t kv_row = kKvHeads * kHeadDim, q_row = kKvHeads * kGroup * kHeadDim;
  kvc_seq s_exact = 0, s_int8 = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(exact, &s_exact));
  ASSERT_EQ(KVC_OK, kvc_sequence_create(int8, &s_int8));
  for (int layer = 0; layer < 3; ++layer) {
    const std::vector<float> k = random(kv_row * prompt), v = random(kv_row * prompt);
    for (auto [rt, seq] : {std::pair{exact, s_exact}, std::pair{int8, s_int8}}) {
      ASSERT_EQ(KVC_OK, kvc_append(rt, layer, seq, k.data(), v.data(), prompt)) << kvc_last_error();
      ASSERT_EQ(KVC_OK, kvc_end_prefill(rt, layer, seq, nullptr, 0)) << kvc_last_error();
    }
  }
  for (int layer = 0; layer < 3; ++layer) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    const std::vector<float> q = random(q_row);
    std::vector<float> out_exact(q_row), out_int8(q_row);
    ASSERT_EQ(KVC_OK, kvc_attend(exact, layer, s_exact, q.data(), out_exact.data()));
    ASSERT_EQ(KVC_OK, kvc_attend(int8, layer, s_int8, q.data(), out_int8.data()));
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < q_row; ++i) {
      ASSERT_TRUE(std::isfinite(out_int8[i]));
      diff += (double(out_int8[i]) - out_exact[i]) * (double(out_int8[i]) - out_exact[i]);
      norm += double(out_exact[i]) * out_exact[i];
    }
    if (layer == 0) {
      EXPECT_GT(diff, 0.0) << "the int8-dot kernel gave the exact kernel's output bit for bit";
      EXPECT_LT(std::sqrt(diff), 0.05 * std::sqrt(norm));
    } else {
      EXPECT_EQ(diff, 0.0);
    }
  }
  kvc_runtime_destroy(exact);
  kvc_runtime_destroy(int8);
}

TEST(Int8DotConfig, OtherBackendsRejectTheFlag) {
  const std::string plan = mixed_plan();
  for (kvc_backend b : {KVC_BACKEND_REFERENCE, KVC_BACKEND_LLVM_AOT}) {
    kvc_runtime_config config = kvc_runtime_config_default();
    config.backend = b;
    config.int8_dot = 1;
    kvc_runtime* rt = nullptr;
    EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt));
    EXPECT_NE(std::string(kvc_last_error()).find("int8_dot"), std::string::npos) << kvc_last_error();
    EXPECT_EQ(rt, nullptr);
  }
}

TEST(Int8DotConfig, ConfigsFromBeforeTheFieldStillWork) {
  const std::string plan = mixed_plan();
  // What a host compiled against the first kvc_runtime_config passes: the fields up
  // to isa, with whatever follows in its memory not part of the struct.
  kvc_runtime_config config = kvc_runtime_config_default();
  config.size = offsetof(kvc_runtime_config, int8_dot);
  config.int8_dot = 1;  // beyond `size`: must not be read
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt)) << kvc_last_error();
  const char* attend = nullptr;
  ASSERT_EQ(KVC_OK, kvc_layer_kernel_names(rt, 0, &attend, nullptr));
  EXPECT_FALSE(has_i8(attend)) << attend;
  kvc_runtime_destroy(rt);
  // A size from a later kvc.h than this library knows is refused, not half-read.
  config.size = sizeof(kvc_runtime_config) + 4;
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_runtime_create_from_text_with_config(plan.c_str(), &config, &rt));
  EXPECT_NE(std::string(kvc_last_error()).find("size"), std::string::npos);
}

}  // namespace
}  // namespace kvc
