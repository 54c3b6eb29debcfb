#include "runtime/soak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <sstream>
#include <thread>
#include <vector>

#include "backends/llvm/generated_formats.h"
#include "backends/reference/reference_cache.h"
#include "ir/layout.h"
#include "ir/precision.h"
#include "ir/printer.h"
#include "runtime/plan_builders.h"

namespace kvc::soak {
namespace {

using ir::BasisSharing;
using ir::BasisSource;
using ir::RetentionPolicy;
using Clock = std::chrono::steady_clock;

constexpr int kHeadDim = 64, kKvHeads = 2, kG = 2;
constexpr int kCalibratedLayer = 3, kCalibratedRank = 24;
constexpr std::int64_t kContext = 192;
constexpr std::size_t kKvRow = kKvHeads * kHeadDim, kQRow = kKvHeads * kG * kHeadDim;

// A check that failed; caught by the thread that made it.
struct Failure {
  std::string what;
};

[[noreturn]] void fail(const std::string& what) { throw Failure{what}; }

std::string last_error() { return kvc_last_error(); }

void expect_ok(kvc_status st, const std::string& what) {
  if (st != KVC_OK) fail(what + " returned " + kvc_status_name(st) + ": " + last_error());
}

// A refusal the plan requires: this status and a message naming the reason.
void expect_refused(kvc_status st, kvc_status want, const std::string& phrase, const std::string& what) {
  if (st != want)
    fail(what + " returned " + kvc_status_name(st) + ", expected " + kvc_status_name(want) + ": " + last_error());
  if (last_error().find(phrase) == std::string::npos)
    fail(what + ": the message '" + last_error() + "' does not say '" + phrase + "'");
}

// One sequence of the runtime and its reference caches, one per layer, given
// the same operations.
struct Twin {
  kvc_seq seq = 0;
  std::int64_t seen = 0;  // tokens in every layer
  std::vector<std::unique_ptr<reference::ReferenceLayerCache>> ref;
};

struct Shared {
  ir::Module module;
  kvc_runtime* rt = nullptr;
  bool exact = true;                          // reference backend: bit-identical outputs
  std::vector<std::vector<float>> calibrated;  // layer 3's basis, per KV head
  std::int64_t estimate = 0;                  // ir::total_bytes of the plan
  std::vector<std::int64_t> live_estimate;    // [n]: the estimate for n live sequences
  std::int64_t max_operations = 0;
  Clock::time_point deadline;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> operations{0};
};

class Worker {
 public:
  Worker(Shared& shared, int index, std::uint32_t seed) : s_(shared), index_(index), rng_(seed) {}

  // Operations until the limit; then frees its sequences. Throws Failure.
  void run() {
    while (!s_.stop.load()) {
      const std::int64_t op = s_.operations.fetch_add(1) + 1;
      if ((s_.max_operations > 0 && op > s_.max_operations) || Clock::now() >= s_.deadline) {
        s_.stop = true;
        break;
      }
      ++report_.operations;
      one_operation();
      check_memory("after operation " + std::to_string(op));
    }
    while (!twins_.empty()) free_twin(twins_.size() - 1);
  }

  const SoakReport& report() const { return report_; }
  std::string where() const { return "thread " + std::to_string(index_) + ": "; }

 private:
  std::vector<float> random_values(std::size_t n, float scale = 1.0f) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> x(n);
    for (float& e : x) e = dist(rng_);
    return x;
  }
  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

  void one_operation() {
    // At most three sequences of its own, so that threads share the batch
    // (2 per thread and one more) and run into its limit only now and then.
    const unsigned r = rng_() % 100;
    const bool room = twins_.size() < 3;
    if (twins_.empty() || (r < 8 && room))
      create();
    else if (r < 13 && room)
      fork(pick(twins_.size()));
    else if (r < 19)
      free_twin(pick(twins_.size()));
    else if (r < 27 && twins_.size() >= 2)
      attend_batch(static_cast<int>(pick(layers())));
    else
      decode(pick(twins_.size()));
  }

  void create() {
    kvc_seq id = 0;
    const kvc_status st = kvc_sequence_create(s_.rt, &id);
    if (st != KVC_OK) {
      expect_refused(st, KVC_ERROR_CAPACITY, "sequences", where() + "create with the batch full");
      ++report_.refusals;
      return;
    }
    ++report_.creates;
    Twin t;
    t.seq = id;
    for (int l = 0; l < layers(); ++l) {
      t.ref.push_back(std::make_unique<reference::ReferenceLayerCache>(s_.module, l));
      if (l == kCalibratedLayer)
        for (int h = 0; h < kKvHeads; ++h) t.ref.back()->set_basis(h, s_.calibrated[static_cast<std::size_t>(h)]);
    }
    twins_.push_back(std::move(t));
    prefill(twins_.back());
  }

  // A prompt of random length, appended to each layer in random chunks, then the
  // end of prefill with a random number of window queries.
  void prefill(Twin& t) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng_() % (kContext / 2));
    for (int l = 0; l < layers(); ++l) {
      for (std::int64_t done = 0; done < n;) {
        const std::int64_t chunk = 1 + static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(n - done));
        const auto k = random_values(kKvRow * static_cast<std::size_t>(chunk));
        const auto v = random_values(kKvRow * static_cast<std::size_t>(chunk));
        expect_ok(kvc_append(s_.rt, l, t.seq, k.data(), v.data(), chunk), where() + "prompt append");
        t.ref[static_cast<std::size_t>(l)]->append(k.data(), v.data(), chunk);
        done += chunk;
        report_.appended_tokens += chunk;
      }
    }
    const std::int64_t n_q = 1 + static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(std::min<std::int64_t>(n, 8)));
    for (int l = 0; l < layers(); ++l) {
      const auto window = random_values(kQRow * static_cast<std::size_t>(n_q));
      expect_ok(kvc_end_prefill(s_.rt, l, t.seq, window.data(), n_q), where() + "end_prefill");
      t.ref[static_cast<std::size_t>(l)]->end_prefill(std::span<const float>(window));
    }
    t.seen = n;
    ++report_.prefills;
  }

  void fork(std::size_t i) {
    kvc_seq id = 0;
    const kvc_status st = kvc_sequence_fork(s_.rt, twins_[i].seq, &id);
    if (st != KVC_OK) {
      expect_refused(st, KVC_ERROR_CAPACITY, "cannot fork", where() + "fork with the batch full");
      ++report_.refusals;
      return;
    }
    ++report_.forks;
    Twin t;
    t.seq = id;
    t.seen = twins_[i].seen;
    for (const auto& r : twins_[i].ref) t.ref.push_back(std::make_unique<reference::ReferenceLayerCache>(*r));
    twins_.push_back(std::move(t));
  }

  void free_twin(std::size_t i) {
    const kvc_seq id = twins_[i].seq;
    expect_ok(kvc_sequence_free(s_.rt, id), where() + "free of sequence " + std::to_string(id));
    twins_.erase(twins_.begin() + static_cast<std::ptrdiff_t>(i));
    ++report_.frees;
    // The freed id is unknown from now on (kvc.h "Handles").
    std::vector<float> q(kQRow, 0.25f), out(kQRow);
    expect_refused(kvc_attend(s_.rt, 0, id, q.data(), out.data()), KVC_ERROR_INVALID_ARGUMENT, "unknown sequence",
                   where() + "attend to freed sequence " + std::to_string(id));
  }

  // One decode step in every layer: a token appended, a query attended. A full
  // sequence instead checks that one more token is refused, then is freed.
  void decode(std::size_t i) {
    Twin& t = twins_[i];
    if (t.seen == kContext) {
      const auto k = random_values(kKvRow), v = random_values(kKvRow), q = random_values(kQRow);
      const int l = static_cast<int>(pick(layers()));
      expect_refused(kvc_append(s_.rt, l, t.seq, k.data(), v.data(), 1), KVC_ERROR_CAPACITY, "context",
                     where() + "append to a full sequence");
      ++report_.refusals;
      attend_one(t, l, q);  // unchanged by the refusal
      free_twin(i);
      return;
    }
    for (int l = 0; l < layers(); ++l) {
      const auto k = random_values(kKvRow), v = random_values(kKvRow), q = random_values(kQRow);
      expect_ok(kvc_append(s_.rt, l, t.seq, k.data(), v.data(), 1), where() + "decode append");
      t.ref[static_cast<std::size_t>(l)]->append(k.data(), v.data(), 1);
      ++report_.appended_tokens;
      attend_one(t, l, q);
    }
    ++t.seen;
  }

  void attend_one(Twin& t, int l, const std::vector<float>& q) {
    std::vector<float> out(kQRow), want(kQRow);
    expect_ok(kvc_attend(s_.rt, l, t.seq, q.data(), out.data()), where() + "attend");
    t.ref[static_cast<std::size_t>(l)]->attend(q.data(), want.data());
    ++report_.attends;
    compare(out.data(), want.data(), t, l);
  }

  void attend_batch(int l) {
    std::vector<kvc_seq> ids;
    for (const Twin& t : twins_) ids.push_back(t.seq);
    const auto q = random_values(kQRow * ids.size());
    std::vector<float> out(q.size()), want(kQRow);
    expect_ok(kvc_attend_batch(s_.rt, l, ids.data(), static_cast<int32_t>(ids.size()), q.data(), out.data()),
              where() + "attend_batch");
    ++report_.batch_attends;
    for (std::size_t i = 0; i < twins_.size(); ++i) {
      twins_[i].ref[static_cast<std::size_t>(l)]->attend(q.data() + i * kQRow, want.data());
      compare(out.data() + i * kQRow, want.data(), twins_[i], l);
    }
  }

  void compare(const float* out, const float* want, const Twin& t, int l) const {
    const std::string what = where() + "sequence " + std::to_string(t.seq) + " at " + std::to_string(t.seen) +
                             " tokens, layer " + std::to_string(l) + ": ";
    if (s_.exact) {
      if (std::memcmp(out, want, kQRow * sizeof(float)) != 0) fail(what + "attention differs from the reference");
      return;
    }
    for (std::size_t h = 0; h < kQRow / kHeadDim; ++h) {
      double err = 0.0, norm = 0.0;
      for (std::size_t d = h * kHeadDim; d < (h + 1) * kHeadDim; ++d) {
        err += (out[d] - want[d]) * static_cast<double>(out[d] - want[d]);
        norm += want[d] * static_cast<double>(want[d]);
      }
      if (!(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-6))
        fail(what + "query head " + std::to_string(h) + " differs from the reference by " +
             std::to_string(std::sqrt(err)) + " (norm " + std::to_string(std::sqrt(norm)) + ")");
    }
  }

  void check_memory(const std::string& when) {
    kvc_memory_stats st{};
    expect_ok(kvc_memory_stats_get(s_.rt, &st), where() + "memory stats");
    const std::string what = where() + when + ": ";
    const auto n = [](std::int64_t x) { return std::to_string(x); };
    if (st.bytes_allocated != s_.estimate)
      fail(what + "bytes_allocated " + n(st.bytes_allocated) + " is not the estimate " + n(s_.estimate));
    if (st.live_sequences < 0 || st.live_sequences >= static_cast<std::int64_t>(s_.live_estimate.size()))
      fail(what + n(st.live_sequences) + " live sequences, beyond the batch");
    if (st.live_sequences > 0 && st.bytes_live != s_.live_estimate[static_cast<std::size_t>(st.live_sequences)])
      fail(what + "bytes_live " + n(st.bytes_live) + " is not the estimate for " + n(st.live_sequences) +
           " sequences, " + n(s_.live_estimate[static_cast<std::size_t>(st.live_sequences)]));
    if (st.bytes_used > st.bytes_live || st.bytes_live > st.bytes_allocated)
      fail(what + "bytes used " + n(st.bytes_used) + " / live " + n(st.bytes_live) + " / allocated " +
           n(st.bytes_allocated) + " out of order");
    if (st.blocks_used > st.blocks_total)
      fail(what + n(st.blocks_used) + " blocks used of " + n(st.blocks_total));
  }

  Shared& s_;
  int index_;
  int layers() const { return s_.module.model.layers; }

  std::mt19937 rng_;
  std::vector<Twin> twins_;
  SoakReport report_;
};

}  // namespace

namespace {

ir::LayerPlan rotated_layer(const std::string& pair_name, int residual) {
  const ir::PrecisionPair pair = *ir::parse_precision_pair(pair_name);
  ir::LayerPlan p;
  p.key = ir::key_format(pair.key, 32, kHeadDim, /*seed=*/11);
  p.value = ir::value_format(pair.value, 32, kHeadDim, /*seed=*/12);
  p.residual = residual;
  return p;
}

}  // namespace

ir::Module soak_module(std::int64_t batch, bool rotated) {
  using testing::kivi_layer;
  using testing::with_rank;
  using testing::with_retention;
  const ir::LayerPlan l0 = with_retention(kivi_layer(4, 2, 32, 32), RetentionPolicy::StreamingLLM, 96);
  const ir::LayerPlan l1 = with_rank(with_retention(kivi_layer(8, 4, 32, 0), RetentionPolicy::H2O, 96), 16,
                                     BasisSharing::PerLayer, BasisSource::Prefill);
  const ir::LayerPlan l2 = with_retention(kivi_layer(2, 2, 32, 32), RetentionPolicy::SnapKV, 80);
  const ir::LayerPlan l3 = with_rank(with_retention(kivi_layer(4, 4, 32, 32), RetentionPolicy::CAKE, 100),
                                     kCalibratedRank, BasisSharing::PerLayer, BasisSource::Calibrated);
  if (!rotated) return testing::runtime_module(kHeadDim, kKvHeads, kG, kContext, batch, {l0, l1, l2, l3});
  const ir::LayerPlan l4 = with_retention(rotated_layer("K4trV2cr", 32), RetentionPolicy::H2O, 96);
  const ir::LayerPlan l5 = rotated_layer("K3tV3cr", 0);
  return testing::runtime_module(kHeadDim, kKvHeads, kG, kContext, batch, {l0, l1, l2, l3, l4, l5});
}

// Whether `backend` runs the rotated formats: the reference backend does; the
// llvm-jit backend does once it generates every layer of the rotated soak plan.
namespace {

bool rotated_formats_run_on(kvc_backend backend) {
  if (backend == KVC_BACKEND_REFERENCE) return true;
  const ir::Module m = soak_module(1, /*rotated=*/true);
  for (int l = 0; l < m.model.layers; ++l)
    if (!llvm_backend::unsupported_format(ir::lower_layer(m, l)).empty()) return false;
  return true;
}

}  // namespace

SoakReport run_soak(const SoakOptions& options) {
  SoakReport total;
  Shared s;
  const int threads = std::max(options.threads, 1);
  // Room for two sequences per thread and one more: threads compete for the
  // last slots, so creates and forks are refused now and then.
  total.rotated = rotated_formats_run_on(options.backend);
  s.module = soak_module(2 * threads + 1, total.rotated);
  s.exact = options.backend == KVC_BACKEND_REFERENCE;
  s.estimate = ir::total_bytes(s.module);
  for (std::int64_t live = 0; live <= s.module.workload.batch; ++live) {
    ir::Module m = s.module;
    m.workload.batch = live;
    s.live_estimate.push_back(live > 0 ? ir::total_bytes(m) : 0);
  }
  s.max_operations = options.max_operations;

  kvc_runtime_config config = kvc_runtime_config_default();
  config.backend = options.backend;
  config.threads = options.runtime_threads;
  const std::string text = ir::print_module(s.module);
  if (kvc_runtime_create_from_text_with_config(text.c_str(), &config, &s.rt) != KVC_OK) {
    total.failure = "cannot create the runtime: " + last_error();
    return total;
  }
  std::mt19937 rng(options.seed);
  std::normal_distribution<float> dist(0.0f, 0.2f);
  for (int h = 0; h < kKvHeads; ++h) {
    std::vector<float> u(static_cast<std::size_t>(kHeadDim * kCalibratedRank));
    for (float& x : u) x = dist(rng);
    if (kvc_set_calibrated_basis(s.rt, kCalibratedLayer, h, u.data()) != KVC_OK)
      total.failure = "cannot set the calibrated basis: " + last_error();
    s.calibrated.push_back(std::move(u));
  }

  // The time limit counts from here, after the JIT has compiled the kernels.
  const auto start = Clock::now();
  s.deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) workers.push_back(std::make_unique<Worker>(s, i, options.seed * 7919u + static_cast<std::uint32_t>(i)));
  std::mutex failure_mutex;
  std::vector<std::thread> pool;
  if (total.failure.empty())
    for (auto& w : workers)
      pool.emplace_back([&, worker = w.get()] {
        try {
          worker->run();
        } catch (const Failure& f) {
          s.stop = true;
          std::lock_guard lock(failure_mutex);
          if (total.failure.empty()) total.failure = f.what;
        } catch (const std::exception& e) {  // the reference caches throw kvc::Error on misuse
          s.stop = true;
          std::lock_guard lock(failure_mutex);
          if (total.failure.empty()) total.failure = worker->where() + e.what();
        }
      });
  for (std::thread& t : pool) t.join();

  // Every sequence freed: every block is back in its pool.
  kvc_memory_stats st{};
  if (total.failure.empty() && kvc_memory_stats_get(s.rt, &st) == KVC_OK && (st.live_sequences != 0 || st.blocks_used != 0))
    total.failure = "after every sequence was freed, " + std::to_string(st.live_sequences) + " are live and " +
                    std::to_string(st.blocks_used) + " blocks are still used";
  kvc_runtime_destroy(s.rt);

  for (const auto& w : workers) {
    const SoakReport& r = w->report();
    total.operations += r.operations;
    total.creates += r.creates;
    total.forks += r.forks;
    total.frees += r.frees;
    total.prefills += r.prefills;
    total.appended_tokens += r.appended_tokens;
    total.attends += r.attends;
    total.batch_attends += r.batch_attends;
    total.refusals += r.refusals;
  }
  total.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  total.layers = s.module.model.layers;
  return total;
}

std::string describe(const SoakReport& r) {
  std::ostringstream os;
  os << r.layers << " layers" << (r.rotated ? " (rotated formats included)" : " (no rotated formats: the backend refuses them)")
     << ", " << r.operations << " operations in " << r.seconds << " s (each followed by a memory check): " << r.creates
     << " creates with " << r.prefills << " prompts, " << r.forks << " forks, " << r.frees << " frees, "
     << r.appended_tokens << " tokens appended, " << r.attends << " attends, " << r.batch_attends
     << " batched attends, " << r.refusals << " refusals as the plan requires; "
     << (r.failure.empty() ? "every check held" : "FAILED: " + r.failure);
  return os.str();
}

}  // namespace kvc::soak
