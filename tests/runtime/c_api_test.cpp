// The C API (kvc.h) through the shared library: plan loading from text, a file and
// a compile folder; bad calls return a status and a message and change nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ir/layout.h"
#include "ir/printer.h"
#include "kvc.h"
#include "runtime/plan_builders.h"
#include "test_support/test_data.h"

namespace kvc {
namespace {

constexpr int kHeadDim = 64, kKvHeads = 2, kG = 4;
constexpr std::int64_t kContext = 100;

ir::Module api_module() {
  ir::LayerPlan l0 = testing::kivi_layer(4, 2, 32, 32);
  l0.retention = {ir::RetentionPolicy::StreamingLLM, 64, 4, 16, 0, 0.0};
  ir::LayerPlan l1 = testing::kivi_layer(8, 4, 32, 0);
  l1.retention = {ir::RetentionPolicy::SnapKV, 64, 0, 8, 3, 0.0};
  return testing::runtime_module(kHeadDim, kKvHeads, kG, kContext, /*batch=*/2, {l0, l1});
}

std::vector<float> random_values(std::mt19937& rng, std::size_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return x;
}

class CApi : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string text = ir::print_module(api_module());
    ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text(text.c_str(), nullptr, &rt_)) << kvc_last_error();
    ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &seq_));
    // A prompt in both layers and the end of prefill (layer 1 selects with SnapKV).
    for (int l = 0; l < 2; ++l) {
      const auto k = random_values(rng_, kv_row_ * 30), v = random_values(rng_, kv_row_ * 30);
      ASSERT_EQ(KVC_OK, kvc_append(rt_, l, seq_, k.data(), v.data(), 30)) << kvc_last_error();
      const auto w = random_values(rng_, q_row_ * 4);
      ASSERT_EQ(KVC_OK, kvc_end_prefill(rt_, l, seq_, w.data(), 4)) << kvc_last_error();
    }
  }
  void TearDown() override { kvc_runtime_destroy(rt_); }

  std::vector<float> attend(int layer, kvc_seq seq) {
    std::vector<float> out(q_row_);
    EXPECT_EQ(KVC_OK, kvc_attend(rt_, layer, seq, probe_.data(), out.data())) << kvc_last_error();
    return out;
  }

  std::mt19937 rng_{3};
  std::size_t kv_row_ = kKvHeads * kHeadDim, q_row_ = kKvHeads * kG * kHeadDim;
  std::vector<float> probe_ = random_values(rng_, q_row_);
  kvc_runtime* rt_ = nullptr;
  kvc_seq seq_ = 0;
};

TEST_F(CApi, ReportsTheModelAndTheEstimatedBytes) {
  kvc_model_info info{};
  ASSERT_EQ(KVC_OK, kvc_model_info_get(rt_, &info));
  EXPECT_EQ(info.layers, 2);
  EXPECT_EQ(info.q_heads, kKvHeads * kG);
  EXPECT_EQ(info.head_dim, kHeadDim);
  kvc_memory_stats st{};
  ASSERT_EQ(KVC_OK, kvc_memory_stats_get(rt_, &st));
  EXPECT_EQ(st.bytes_allocated, ir::total_bytes(api_module()));
  EXPECT_EQ(st.live_sequences, 1);
  EXPECT_GT(st.bytes_used, 0);
  EXPECT_LE(st.bytes_used, st.bytes_live);
}

TEST_F(CApi, BadCallsReturnAStatusAndLeaveTheStoreUnchanged) {
  const std::vector<float> before0 = attend(0, seq_), before1 = attend(1, seq_);
  kvc_memory_stats st_before{};
  ASSERT_EQ(KVC_OK, kvc_memory_stats_get(rt_, &st_before));
  const auto k = random_values(rng_, kv_row_ * 200), v = random_values(rng_, kv_row_ * 200);
  std::vector<float> out(q_row_);

  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_append(rt_, 2, seq_, k.data(), v.data(), 1));
  EXPECT_NE(std::string(kvc_last_error()).find("unknown layer 2"), std::string::npos) << kvc_last_error();
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_append(rt_, -1, seq_, k.data(), v.data(), 1));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_append(rt_, 0, seq_ + 100, k.data(), v.data(), 1));
  EXPECT_NE(std::string(kvc_last_error()).find("unknown sequence"), std::string::npos);
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_append(rt_, 0, seq_, nullptr, v.data(), 1));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_append(rt_, 0, seq_, k.data(), v.data(), -3));
  // Past the context (30 held + 71 > 100): refused as a whole, nothing appended.
  EXPECT_EQ(KVC_ERROR_CAPACITY, kvc_append(rt_, 0, seq_, k.data(), v.data(), 71));
  EXPECT_NE(std::string(kvc_last_error()).find("context"), std::string::npos) << kvc_last_error();
  // A non-finite value in the last token: refused before the first is stored.
  std::vector<float> bad = k;
  bad[kv_row_ * 5 - 1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_append(rt_, 0, seq_, bad.data(), v.data(), 5));
  bad[kv_row_ * 5 - 1] = 1e6f;  // outside fp16
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_append(rt_, 0, seq_, bad.data(), v.data(), 5));
  EXPECT_EQ(KVC_ERROR_STATE, kvc_end_prefill(rt_, 1, seq_, probe_.data(), 1));  // twice
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_attend(rt_, 0, seq_, nullptr, out.data()));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_attend(rt_, 7, seq_, probe_.data(), out.data()));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_set_calibrated_basis(rt_, 0, 0, probe_.data()));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_sequence_free(rt_, seq_ + 100));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_attend(nullptr, 0, seq_, probe_.data(), out.data()));
  const kvc_seq twice[2] = {seq_, seq_};
  std::vector<float> q2(2 * q_row_), out2(2 * q_row_);
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_attend_batch(rt_, 0, twice, 2, q2.data(), out2.data()));

  kvc_memory_stats st_after{};
  ASSERT_EQ(KVC_OK, kvc_memory_stats_get(rt_, &st_after));
  EXPECT_EQ(0, std::memcmp(&st_before, &st_after, sizeof st_before));
  EXPECT_EQ(before0, attend(0, seq_));
  EXPECT_EQ(before1, attend(1, seq_));
  // The store still works: fill it to exactly the context.
  EXPECT_EQ(KVC_OK, kvc_append(rt_, 0, seq_, k.data(), v.data(), kContext - 30)) << kvc_last_error();
  EXPECT_EQ(KVC_ERROR_CAPACITY, kvc_append(rt_, 0, seq_, k.data(), v.data(), 1));
}

TEST_F(CApi, SequencesAreLimitedToTheBatchAndAttendNeedsTheEndOfPrefill) {
  kvc_seq other = 0, third = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &other));
  EXPECT_EQ(KVC_ERROR_CAPACITY, kvc_sequence_create(rt_, &third));
  EXPECT_EQ(KVC_ERROR_CAPACITY, kvc_sequence_fork(rt_, seq_, &third));
  std::vector<float> out(q_row_);
  const auto k = random_values(rng_, kv_row_ * 10), v = random_values(rng_, kv_row_ * 10);
  ASSERT_EQ(KVC_OK, kvc_append(rt_, 1, other, k.data(), v.data(), 10));
  EXPECT_EQ(KVC_ERROR_STATE, kvc_attend(rt_, 1, other, probe_.data(), out.data()));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_end_prefill(rt_, 1, other, probe_.data(), 0));  // SnapKV needs a window
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_end_prefill(rt_, 1, other, probe_.data(), 11));
  ASSERT_EQ(KVC_OK, kvc_end_prefill(rt_, 1, other, probe_.data(), 1));
  EXPECT_EQ(KVC_OK, kvc_attend(rt_, 1, other, probe_.data(), out.data()));
  ASSERT_EQ(KVC_OK, kvc_sequence_free(rt_, other));
  kvc_seq fork = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_fork(rt_, seq_, &fork));
  EXPECT_EQ(attend(0, seq_), attend(0, fork));
  EXPECT_EQ(attend(1, seq_), attend(1, fork));
}

TEST(CApiPlans, LoadsAPlanFileOrACompileFolderAndRejectsBadOnes) {
  const std::filesystem::path dir = std::filesystem::path(testing::binary_dir()) / "runtime_c_api_plan";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "plan.kvc");
    f << ir::print_module(api_module());
  }
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create(dir.string().c_str(), nullptr, &rt)) << kvc_last_error();
  kvc_runtime_destroy(rt);
  ASSERT_EQ(KVC_OK, kvc_runtime_create((dir / "plan.kvc").string().c_str(), nullptr, &rt)) << kvc_last_error();
  kvc_runtime_destroy(rt);
  rt = nullptr;
  EXPECT_EQ(KVC_ERROR_PLAN, kvc_runtime_create((dir / "missing.kvc").string().c_str(), nullptr, &rt));
  EXPECT_EQ(rt, nullptr);
  EXPECT_EQ(KVC_ERROR_PLAN, kvc_runtime_create_from_text("module {", nullptr, &rt));
  EXPECT_STRNE(kvc_last_error(), "");
  // A plan the store cannot hold: 3-bit per-token values over groups that do not divide head_dim.
  ir::Module m = api_module();
  m.layers[0].value = {3, ir::QuantAxis::PerToken, 48};
  EXPECT_EQ(KVC_ERROR_PLAN, kvc_runtime_create_from_text(ir::print_module(m).c_str(), nullptr, &rt));
  EXPECT_EQ(KVC_ERROR_INVALID_ARGUMENT, kvc_runtime_create(nullptr, nullptr, &rt));
}

}  // namespace
}  // namespace kvc
