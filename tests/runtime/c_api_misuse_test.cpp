// The C API under misuse (kvc.h "Errors"): null and unknown handles, a sequence
// used after it was freed, layers out of range, sizes that do not match the
// buffers, appends past the context, attends before anything was appended, and
// two threads on one sequence. Every rejected call must return its status and a
// message saying what was wrong, and leave the store exactly as it was: the
// memory statistics and the attention output of every layer are compared
// before and after. (A destroyed runtime cannot be detected: kvc.h says so.)
#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ir/printer.h"
#include "kvc.h"
#include "runtime/plan_builders.h"

namespace kvc {
namespace {

constexpr int kHeadDim = 32, kKvHeads = 2, kG = 2, kLayers = 3;
constexpr std::int64_t kContext = 96, kPrompt = 20;
constexpr std::size_t kKvRow = kKvHeads * kHeadDim, kQRow = kKvHeads * kG * kHeadDim;

// Layer 0 quantizes and evicts without staging (StreamingLLM), layer 1 stages
// its prompt for SnapKV, layer 2 stores low-rank keys in a calibrated basis.
// None of them updates scores on attend, so attending is a pure observation.
ir::Module misuse_module(std::int64_t batch) {
  using ir::BasisSharing;
  using ir::BasisSource;
  using ir::RetentionPolicy;
  const ir::LayerPlan l0 = testing::with_retention(testing::kivi_layer(4, 2, 32, 32), RetentionPolicy::StreamingLLM, 64);
  const ir::LayerPlan l1 = testing::with_retention(testing::kivi_layer(8, 4, 32, 0), RetentionPolicy::SnapKV, 64);
  const ir::LayerPlan l2 =
      testing::with_rank(testing::kivi_layer(8, 8, 32, 32), 8, BasisSharing::PerLayer, BasisSource::Calibrated);
  return testing::runtime_module(kHeadDim, kKvHeads, kG, kContext, batch, {l0, l1, l2});
}

std::vector<float> random_values(std::mt19937& rng, std::size_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return x;
}

// An orthonormal [head_dim][rank] basis: the first `rank` unit vectors.
std::vector<float> unit_basis(int rank) {
  std::vector<float> u(static_cast<std::size_t>(kHeadDim * rank), 0.0f);
  for (int r = 0; r < rank; ++r) u[static_cast<std::size_t>(r * rank + r)] = 1.0f;
  return u;
}

bool says(const std::string& phrase) { return std::string(kvc_last_error()).find(phrase) != std::string::npos; }

class CApiMisuse : public ::testing::Test {
 protected:
  void SetUp() override { create(/*batch=*/2); }
  void TearDown() override { kvc_runtime_destroy(rt_); }

  void create(std::int64_t batch) {
    kvc_runtime_destroy(rt_);
    rt_ = nullptr;
    const std::string text = ir::print_module(misuse_module(batch));
    ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text(text.c_str(), nullptr, &rt_)) << kvc_last_error();
    const std::vector<float> u = unit_basis(8);
    for (int h = 0; h < kKvHeads; ++h) ASSERT_EQ(KVC_OK, kvc_set_calibrated_basis(rt_, 2, h, u.data()));
    ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &seq_));
    prefill(seq_, kPrompt);
  }

  // A prompt of n tokens in every layer and the end of prefill.
  void prefill(kvc_seq seq, std::int64_t n) {
    for (int l = 0; l < kLayers; ++l) {
      const auto k = random_values(rng_, kKvRow * static_cast<std::size_t>(n));
      const auto v = random_values(rng_, kKvRow * static_cast<std::size_t>(n));
      ASSERT_EQ(KVC_OK, kvc_append(rt_, l, seq, k.data(), v.data(), n)) << kvc_last_error();
      const auto w = random_values(rng_, kQRow);
      ASSERT_EQ(KVC_OK, kvc_end_prefill(rt_, l, seq, w.data(), 1)) << kvc_last_error();
    }
  }

  // What the store holds, as the C API shows it: the memory statistics and the
  // attention output of every layer for the probe query.
  std::vector<float> snapshot() {
    kvc_memory_stats st{};
    EXPECT_EQ(KVC_OK, kvc_memory_stats_get(rt_, &st));
    std::vector<float> all(sizeof st / sizeof(float) + 1);
    std::memcpy(all.data(), &st, sizeof st);
    for (int l = 0; l < kLayers; ++l) {
      std::vector<float> out(kQRow);
      EXPECT_EQ(KVC_OK, kvc_attend(rt_, l, seq_, probe_.data(), out.data())) << kvc_last_error();
      all.insert(all.end(), out.begin(), out.end());
    }
    return all;
  }

  // `call` must return `status` with a message containing `phrase`, and change nothing.
  void expect_rejected(kvc_status status, const std::string& phrase, const std::function<kvc_status()>& call,
                       const std::string& what) {
    const std::vector<float> before = snapshot();
    EXPECT_EQ(status, call()) << what << ": " << kvc_last_error();
    EXPECT_TRUE(says(phrase)) << what << ": message '" << kvc_last_error() << "' lacks '" << phrase << "'";
    const std::vector<float> after = snapshot();
    ASSERT_EQ(before.size(), after.size());
    EXPECT_EQ(0, std::memcmp(before.data(), after.data(), before.size() * sizeof(float))) << what << " changed the store";
  }

  std::mt19937 rng_{17};
  std::vector<float> probe_ = random_values(rng_, kQRow);
  std::vector<float> k_ = random_values(rng_, kKvRow * kContext), v_ = random_values(rng_, kKvRow * kContext);
  std::vector<float> out_ = std::vector<float>(kQRow * 4);
  kvc_runtime* rt_ = nullptr;
  kvc_seq seq_ = 0;
};

TEST_F(CApiMisuse, NullRuntimeIsRejectedByEveryEntryPoint) {
  kvc_seq s = 0;
  kvc_model_info info{};
  kvc_memory_stats st{};
  kvc_kernel_stats ks{};
  const char* name = nullptr;
  const float* q = probe_.data();
  float* out = out_.data();
  const std::vector<std::pair<const char*, std::function<kvc_status()>>> calls = {
      {"model_info", [&] { return kvc_model_info_get(nullptr, &info); }},
      {"sequence_create", [&] { return kvc_sequence_create(nullptr, &s); }},
      {"sequence_fork", [&] { return kvc_sequence_fork(nullptr, seq_, &s); }},
      {"sequence_free", [&] { return kvc_sequence_free(nullptr, seq_); }},
      {"append", [&] { return kvc_append(nullptr, 0, seq_, k_.data(), v_.data(), 1); }},
      {"end_prefill", [&] { return kvc_end_prefill(nullptr, 0, seq_, q, 1); }},
      {"attend", [&] { return kvc_attend(nullptr, 0, seq_, q, out); }},
      {"attend_batch", [&] { return kvc_attend_batch(nullptr, 0, &seq_, 1, q, out); }},
      {"set_calibrated_basis", [&] { return kvc_set_calibrated_basis(nullptr, 2, 0, q); }},
      {"set_layer_kernel", [&] { return kvc_set_layer_kernel(nullptr, 0, nullptr); }},
      {"set_layer_append", [&] { return kvc_set_layer_append(nullptr, 0, nullptr); }},
      {"memory_stats", [&] { return kvc_memory_stats_get(nullptr, &st); }},
      {"kernel_stats", [&] { return kvc_kernel_stats_get(nullptr, &ks); }},
      {"layer_kernel_names", [&] { return kvc_layer_kernel_names(nullptr, 0, &name, &name); }},
  };
  for (const auto& [what, call] : calls) expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "runtime is null", call, what);
  kvc_runtime_destroy(nullptr);  // a no-op, as free(NULL)
}

TEST_F(CApiMisuse, NullOutputsAreRejected) {
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null output", [&] { return kvc_sequence_create(rt_, nullptr); },
                  "sequence_create");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null output", [&] { return kvc_sequence_fork(rt_, seq_, nullptr); },
                  "sequence_fork");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null output", [&] { return kvc_model_info_get(rt_, nullptr); },
                  "model_info");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null output", [&] { return kvc_memory_stats_get(rt_, nullptr); },
                  "memory_stats");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null output", [&] { return kvc_kernel_stats_get(rt_, nullptr); },
                  "kernel_stats");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null query or output",
                  [&] { return kvc_attend(rt_, 0, seq_, probe_.data(), nullptr); }, "attend");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null keys or values",
                  [&] { return kvc_append(rt_, 0, seq_, k_.data(), nullptr, 1); }, "append");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "null", [&] { return kvc_set_calibrated_basis(rt_, 2, 0, nullptr); },
                  "set_calibrated_basis");
}

TEST_F(CApiMisuse, UnknownAndFreedSequencesAreRejected) {
  kvc_seq gone = 0, out = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &gone));
  ASSERT_EQ(KVC_OK, kvc_sequence_free(rt_, gone));
  // Ids are never reused, so a freed id stays unknown even after another create.
  kvc_seq next = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &next));
  ASSERT_NE(next, gone);
  ASSERT_EQ(KVC_OK, kvc_sequence_free(rt_, next));
  for (kvc_seq bad : {gone, kvc_seq{0}, kvc_seq{-1}, kvc_seq{INT32_MAX}, kvc_seq{INT32_MIN}}) {
    const std::string id = "sequence " + std::to_string(bad);
    const std::string phrase = "unknown sequence " + std::to_string(bad);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase, [&] { return kvc_append(rt_, 0, bad, k_.data(), v_.data(), 1); },
                    "append to " + id);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase, [&] { return kvc_end_prefill(rt_, 1, bad, probe_.data(), 1); },
                    "end_prefill of " + id);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_attend(rt_, 0, bad, probe_.data(), out_.data()); }, "attend to " + id);
    const kvc_seq pair[2] = {seq_, bad};
    std::vector<float> q2(2 * kQRow, 0.5f), o2(2 * kQRow);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_attend_batch(rt_, 0, pair, 2, q2.data(), o2.data()); }, "attend_batch with " + id);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase, [&] { return kvc_sequence_fork(rt_, bad, &out); },
                    "fork of " + id);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase, [&] { return kvc_sequence_free(rt_, bad); }, "free of " + id);
  }
}

TEST_F(CApiMisuse, LayersOutOfRangeAreRejected) {
  const char* name = nullptr;
  for (int layer : {-1, kLayers, INT32_MAX, INT32_MIN}) {
    const std::string phrase = "unknown layer " + std::to_string(layer);
    const std::string at = " at layer " + std::to_string(layer);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_append(rt_, layer, seq_, k_.data(), v_.data(), 1); }, "append" + at);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_end_prefill(rt_, layer, seq_, probe_.data(), 1); }, "end_prefill" + at);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_attend(rt_, layer, seq_, probe_.data(), out_.data()); }, "attend" + at);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_attend_batch(rt_, layer, &seq_, 1, probe_.data(), out_.data()); },
                    "attend_batch" + at);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_set_calibrated_basis(rt_, layer, 0, probe_.data()); }, "basis" + at);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase, [&] { return kvc_set_layer_kernel(rt_, layer, nullptr); },
                    "set_layer_kernel" + at);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase, [&] { return kvc_set_layer_append(rt_, layer, nullptr); },
                    "set_layer_append" + at);
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, phrase,
                    [&] { return kvc_layer_kernel_names(rt_, layer, &name, &name); }, "kernel names" + at);
  }
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "KV head 2 out of range",
                  [&] { return kvc_set_calibrated_basis(rt_, 2, kKvHeads, probe_.data()); }, "basis of KV head 2");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "KV head -1 out of range",
                  [&] { return kvc_set_calibrated_basis(rt_, 2, -1, probe_.data()); }, "basis of KV head -1");
}

TEST_F(CApiMisuse, SizeArgumentsThatCannotMatchTheBuffersAreRejected) {
  for (std::int64_t n : {std::int64_t{-1}, std::int64_t{INT64_MIN}})
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "negative token count",
                    [&] { return kvc_append(rt_, 0, seq_, k_.data(), v_.data(), n); }, "append of " + std::to_string(n));
  // Counts no buffer can hold are refused by the context before a byte is read.
  for (std::int64_t n : {std::int64_t{INT64_MAX}, std::int64_t{1} << 40, kContext})
    expect_rejected(KVC_ERROR_CAPACITY, "would pass the plan's context",
                    [&] { return kvc_append(rt_, 0, seq_, k_.data(), v_.data(), n); }, "append of " + std::to_string(n));
  // Zero tokens is a valid no-op, even with no buffers.
  const std::vector<float> before = snapshot();
  EXPECT_EQ(KVC_OK, kvc_append(rt_, 0, seq_, nullptr, nullptr, 0)) << kvc_last_error();
  EXPECT_EQ(before, snapshot());

  // attend_batch: the count must match the list.
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "bad sequence list",
                  [&] { return kvc_attend_batch(rt_, 0, &seq_, -1, probe_.data(), out_.data()); }, "n_seqs -1");
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "bad sequence list",
                  [&] { return kvc_attend_batch(rt_, 0, nullptr, 1, probe_.data(), out_.data()); }, "null list");
  const kvc_seq twice[2] = {seq_, seq_};
  expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "appears twice",
                  [&] { return kvc_attend_batch(rt_, 0, twice, 2, out_.data(), out_.data() + 2 * kQRow); }, "twice");

  // end_prefill of a SnapKV layer: 1 .. prompt window queries.
  kvc_seq fresh = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &fresh));
  ASSERT_EQ(KVC_OK, kvc_append(rt_, 1, fresh, k_.data(), v_.data(), 3));
  for (std::int64_t n_q : {std::int64_t{0}, std::int64_t{4}, std::int64_t{-2}, std::int64_t{INT64_MAX}})
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "window quer",
                    [&] { return kvc_end_prefill(rt_, 1, fresh, probe_.data(), n_q); }, "n_q " + std::to_string(n_q));
  EXPECT_EQ(KVC_OK, kvc_end_prefill(rt_, 1, fresh, probe_.data(), 1)) << kvc_last_error();
}

// An empty prompt holds no queries either: a window count above zero cannot
// describe the buffer (the check read n_q * q_heads * head_dim floats from it).
TEST_F(CApiMisuse, WindowQueriesBeyondAnEmptyPromptAreRejected) {
  kvc_seq fresh = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &fresh));
  for (std::int64_t n_q : {std::int64_t{1}, std::int64_t{INT64_MAX / 2}})
    expect_rejected(KVC_ERROR_INVALID_ARGUMENT, "window quer",
                    [&] { return kvc_end_prefill(rt_, 1, fresh, probe_.data(), n_q); }, "n_q " + std::to_string(n_q));
  EXPECT_EQ(KVC_OK, kvc_end_prefill(rt_, 1, fresh, nullptr, 0)) << kvc_last_error();
}

TEST_F(CApiMisuse, AppendsPastTheContextAreRejectedWhole) {
  const std::int64_t room = kContext - kPrompt;
  expect_rejected(KVC_ERROR_CAPACITY, "would pass the plan's context of 96",
                  [&] { return kvc_append(rt_, 0, seq_, k_.data(), v_.data(), room + 1); }, "one past the context");
  ASSERT_EQ(KVC_OK, kvc_append(rt_, 0, seq_, k_.data(), v_.data(), room)) << kvc_last_error();
  expect_rejected(KVC_ERROR_CAPACITY, "holding 96", [&] { return kvc_append(rt_, 0, seq_, k_.data(), v_.data(), 1); },
                  "a full sequence");
  // Other layers count their own tokens.
  EXPECT_EQ(KVC_OK, kvc_append(rt_, 1, seq_, k_.data(), v_.data(), 1)) << kvc_last_error();
}

TEST_F(CApiMisuse, AttendBeforeAnyAppendIsAStateError) {
  kvc_seq fresh = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt_, &fresh));
  for (int l = 0; l < kLayers; ++l)
    expect_rejected(KVC_ERROR_STATE, "layer " + std::to_string(l),
                    [&] { return kvc_attend(rt_, l, fresh, probe_.data(), out_.data()); },
                    "attend to an empty sequence at layer " + std::to_string(l));
}

// kvc.h allows two threads on one sequence (serialised, in some order): after
// both have appended, the sequence holds every token exactly once.
TEST(CApiThreads, TwoThreadsOnOneSequenceAreSerialised) {
  const std::string text = ir::print_module(misuse_module(/*batch=*/1));
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text(text.c_str(), nullptr, &rt)) << kvc_last_error();
  kvc_seq seq = 0;
  ASSERT_EQ(KVC_OK, kvc_sequence_create(rt, &seq));
  std::mt19937 rng(5);
  const std::vector<float> k = random_values(rng, kKvRow), v = random_values(rng, kKvRow), q = random_values(rng, kQRow);
  constexpr int kEach = kContext / 2;
  std::atomic<int> failures{0};
  auto worker = [&] {
    std::vector<float> out(kQRow);
    for (int i = 0; i < kEach; ++i) {
      if (kvc_append(rt, 0, seq, k.data(), v.data(), 1) != KVC_OK) ++failures;
      if (kvc_attend(rt, 0, seq, q.data(), out.data()) != KVC_OK) ++failures;
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  // 2 * kEach == kContext tokens: full, not one more and not one fewer.
  EXPECT_EQ(KVC_ERROR_CAPACITY, kvc_append(rt, 0, seq, k.data(), v.data(), 1));
  EXPECT_TRUE(says("holding 96")) << kvc_last_error();
  kvc_runtime_destroy(rt);
}

// One thread frees a sequence while another is still calling on it; the slot
// goes to the next sequence created. A call that looked the sequence up before
// the free but locked it after must fail as unknown: it must not append into
// the slot, which now belongs to the successor.
TEST(CApiThreads, ACallRacingTheFreeOfItsSequenceNeverReachesTheSuccessor) {
  ir::Module m = misuse_module(/*batch=*/1);
  m.layers.resize(1);
  m.model.layers = 1;
  m.workload.context = std::int64_t{1} << 30;  // the user thread never fills it (StreamingLLM evicts)
  const std::string text = ir::print_module(m);
  kvc_runtime* rt = nullptr;
  ASSERT_EQ(KVC_OK, kvc_runtime_create_from_text(text.c_str(), nullptr, &rt)) << kvc_last_error();
  std::mt19937 rng(6);
  const std::vector<float> k = random_values(rng, kKvRow), v = random_values(rng, kKvRow);
  for (int round = 0; round < 400; ++round) {
    kvc_seq victim = 0, successor = 0;
    ASSERT_EQ(KVC_OK, kvc_sequence_create(rt, &victim));
    std::atomic<int> appended{0};
    std::atomic<kvc_status> last{KVC_OK};
    std::thread user([&] {
      for (;;) {
        const kvc_status st = kvc_append(rt, 0, victim, k.data(), v.data(), 1);
        if (st != KVC_OK) {
          last = st;
          return;
        }
        ++appended;
      }
    });
    while (appended.load() < 1 + round % 3) std::this_thread::yield();
    ASSERT_EQ(KVC_OK, kvc_sequence_free(rt, victim));
    ASSERT_EQ(KVC_OK, kvc_sequence_create(rt, &successor)) << kvc_last_error();
    user.join();
    EXPECT_EQ(last.load(), KVC_ERROR_INVALID_ARGUMENT) << "round " << round;
    kvc_memory_stats st{};
    ASSERT_EQ(KVC_OK, kvc_memory_stats_get(rt, &st));
    ASSERT_EQ(st.bytes_used, 0) << "round " << round << ": the successor holds a token of the freed sequence";
    ASSERT_EQ(st.blocks_used, 0) << "round " << round;
    ASSERT_EQ(KVC_OK, kvc_sequence_free(rt, successor));
  }
  kvc_runtime_destroy(rt);
}

}  // namespace
}  // namespace kvc
