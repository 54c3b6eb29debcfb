#include "bench/decode_bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "backends/llvm/isa.h"
#include "backends/llvm/kernel_jit.h"
#include "support/thread_pool.h"
#include "backends/reference/attention.h"
#include "backends/reference/quantize.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"
#include "support/large_buffer.h"

namespace kvc::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One JIT per isa for the whole process, so each spec compiles once.
llvm_backend::KernelJit& jit_for(ir::KernelIsa isa) {
  static std::mutex mutex;
  static std::map<ir::KernelIsa, std::unique_ptr<llvm_backend::KernelJit>> jits;
  std::lock_guard<std::mutex> lock(mutex);
  auto& j = jits[isa];
  if (!j) j = std::make_unique<llvm_backend::KernelJit>(llvm_backend::JitOptions{isa});
  return *j;
}

ir::LayerPlan quantized(int kbits, int vbits) {
  ir::LayerPlan p;
  p.key = {kbits, ir::QuantAxis::PerChannel, 32};
  p.value = {vbits, ir::QuantAxis::PerToken, 32};
  p.residual = 128;
  return p;
}

}  // namespace

std::vector<BenchFormat> default_formats() {
  return {{"fp16", ir::LayerPlan{}}, {"K8V8", quantized(8, 8)}, {"K4V4", quantized(4, 4)},
          {"K4V2", quantized(4, 2)}, {"K2V2", quantized(2, 2)}};
}

ir::ModelShape llama31_8b_shape() { return {"llama-3.1-8b", 32, 32, 8, 128, 500000.0, ir::DType::F16}; }

std::size_t last_level_cache_bytes() {
  for (int name : {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
    const long v = sysconf(name);
    if (v > 0) return static_cast<std::size_t>(v);
  }
  return 32u << 20;
}

double measure_read_bandwidth(std::size_t bytes, int threads, int repeats) {
  const std::size_t words = bytes / sizeof(std::uint64_t);
  // The same memory as the cases read (huge pages, support/large_buffer.h).
  LargeBuffer buffer(words * sizeof(std::uint64_t));
  auto* data = reinterpret_cast<std::uint64_t*>(buffer.data());
  for (std::size_t i = 0; i < words; ++i) data[i] = i;  // touch every page before timing
  std::vector<std::uint64_t> sinks(static_cast<std::size_t>(threads) * 8);
  auto read_part = [&](int t) {
    const std::size_t b = words * static_cast<std::size_t>(t) / static_cast<std::size_t>(threads);
    const std::size_t e = words * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(threads);
    std::uint64_t s[8] = {};
    std::size_t i = b;
    for (; i + 8 <= e; i += 8)
      for (int k = 0; k < 8; ++k) s[k] += data[i + static_cast<std::size_t>(k)];
    for (; i < e; ++i) s[0] += data[i];
    for (int k = 0; k < 8; ++k) sinks[static_cast<std::size_t>(t) * 8 + static_cast<std::size_t>(k)] = s[k];
  };
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(read_part, t);
    read_part(0);
    for (auto& t : pool) t.join();
    best = std::max(best, static_cast<double>(words * sizeof(std::uint64_t)) / seconds_since(start) / 1e9);
  }
  volatile std::uint64_t keep = 0;
  for (auto v : sinks) keep = keep + v;
  return best;
}

struct DecodeWorkload::Impl {
  ir::LayerPlan plan;
  int head_dim = 0, kv_heads = 0, q_heads = 0, g = 1, block = 1, threads = 1;
  std::int64_t n_blocks = 0, n_tail = 0, block_bytes = 0;
  int layers = 0, next = 0;
  // Every layer's blocks and tails, in huge pages like the runtime's block pools
  // (support/large_buffer.h); taken from and given back to recycled_arena.
  LargeBuffer arena;
  std::vector<std::vector<const std::uint8_t*>> pointers;  // per layer: [kv_heads][n_blocks]
  std::vector<const std::uint16_t*> tails_k, tails_v;      // per layer: [kv_heads][n_tail][d]
  std::vector<float> q, out;
  const llvm_backend::CompiledKernel* kernel = nullptr;
  std::unique_ptr<kvc::ThreadPool> pool;

  kvc_attend_args args(int layer, int h) const {
    const std::size_t hs = static_cast<std::size_t>(h);
    kvc_attend_args a{};
    a.blocks = pointers[static_cast<std::size_t>(layer)].data() + hs * static_cast<std::size_t>(n_blocks);
    a.n_blocks = n_blocks;
    const std::size_t tail_off = hs * static_cast<std::size_t>(n_tail) * static_cast<std::size_t>(head_dim);
    a.tail_k = tails_k[static_cast<std::size_t>(layer)] + tail_off;
    a.tail_v = tails_v[static_cast<std::size_t>(layer)] + tail_off;
    a.n_tail = n_tail;
    const std::size_t qo = hs * static_cast<std::size_t>(g) * static_cast<std::size_t>(head_dim);
    a.q = q.data() + qo;
    a.out = const_cast<float*>(out.data()) + qo;
    return a;
  }
  ~Impl();
};

namespace {

// The last workload's arena, kept for the next one. First-touching GiBs of fresh
// pages costs seconds on a VM (each fault goes to the host), several times per
// benchmark case; a reused arena has its pages already.
std::mutex recycled_mutex;
LargeBuffer recycled_arena;

LargeBuffer take_arena(std::size_t bytes) {
  {
    std::lock_guard lock(recycled_mutex);
    if (recycled_arena.size() >= bytes) return std::move(recycled_arena);
    recycled_arena = LargeBuffer();  // too small: free it before mapping the larger one
  }
  return LargeBuffer(bytes);
}

}  // namespace

DecodeWorkload::Impl::~Impl() {
  std::lock_guard lock(recycled_mutex);
  if (arena.size() > recycled_arena.size()) recycled_arena = std::move(arena);
}

DecodeWorkload::DecodeWorkload(const ir::ModelShape& shape, const ir::LayerPlan& plan, std::int64_t context,
                               int threads, double llc_multiple, ir::KernelIsa isa, bool int8_dot)
    : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  if (plan.lowrank.rank > 0) throw Error("decode bench: low-rank plans need a basis; not supported here");
  if (threads < 1) throw Error("decode bench: threads must be at least 1");
  w.plan = plan;
  w.head_dim = shape.head_dim;
  w.kv_heads = shape.kv_heads;
  w.q_heads = shape.q_heads;
  w.threads = threads;
  ir::Module m = ir::make_uncompressed_module(shape, ir::Workload{context, 1, 0}, 0);
  m.layers[0] = plan;
  m.layers[0].index = 0;
  ir::KernelSpec spec = ir::lower_layer(m, 0, isa);
  spec.int8_dot = int8_dot;
  w.kernel = &jit_for(isa).get(spec);
  w.g = spec.g;
  w.block = ir::token_block(plan);
  w.n_blocks = ir::main_block_capacity(plan, context);
  w.n_tail = std::min<std::int64_t>(ir::tail_capacity(plan), context);
  w.block_bytes = ir::block_bytes(plan, w.head_dim);

  const std::int64_t layer_bytes = bytes_per_call();
  if (llc_multiple < 0) throw Error("decode bench: llc_multiple must be >= 0");
  if (llc_multiple == 0) {
    w.layers = 1;  // every call rereads one layer's cache, from cache: the kernel's compute alone
  } else {
    const double want = std::max(llc_multiple * static_cast<double>(last_level_cache_bytes()), 256.0 * (1 << 20));
    w.layers = std::max(2, static_cast<int>(std::ceil(want / static_cast<double>(layer_bytes))));
  }

  // A few encoded template blocks, copied around: the bytes' values do not change the speed.
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int templates = 16;
  const std::size_t kd = static_cast<std::size_t>(ir::key_dims(plan, w.head_dim));
  std::vector<std::uint8_t> tmpl(static_cast<std::size_t>(w.block_bytes * templates));
  for (int t = 0; t < templates; ++t) {
    std::vector<float> k(static_cast<std::size_t>(w.block) * kd), v(static_cast<std::size_t>(w.block * w.head_dim));
    for (auto& x : k) x = round_to_half(normal(rng));
    for (auto& x : v) x = round_to_half(normal(rng));
    reference::encode_block(plan, w.head_dim, k.data(), v.data(), tmpl.data() + t * w.block_bytes);
  }
  const std::size_t blocks_per_layer = static_cast<std::size_t>(w.kv_heads) * static_cast<std::size_t>(w.n_blocks);
  const std::size_t tail_elems =
      static_cast<std::size_t>(w.kv_heads) * static_cast<std::size_t>(w.n_tail) * static_cast<std::size_t>(w.head_dim);
  // One layer's tails drawn at random, copied to the others like the blocks.
  std::vector<std::uint16_t> tail_k(tail_elems), tail_v(tail_elems);
  for (std::size_t i = 0; i < tail_elems; ++i) {
    tail_k[i] = float_to_half(normal(rng));
    tail_v[i] = float_to_half(normal(rng));
  }
  const std::size_t block_bytes = static_cast<std::size_t>(w.block_bytes);
  const std::size_t tail_bytes = tail_elems * sizeof(std::uint16_t);
  const std::size_t layer_stride = blocks_per_layer * block_bytes + 2 * tail_bytes;
  w.arena = take_arena(layer_stride * static_cast<std::size_t>(w.layers));
  for (int l = 0; l < w.layers; ++l) {
    std::uint8_t* base = w.arena.data() + static_cast<std::size_t>(l) * layer_stride;
    auto& ptrs = w.pointers.emplace_back(blocks_per_layer);
    for (std::size_t b = 0; b < blocks_per_layer; ++b) {
      std::uint8_t* dst = base + b * block_bytes;
      std::memcpy(dst, tmpl.data() + (b % templates) * block_bytes, block_bytes);
      ptrs[b] = dst;
    }
    std::uint8_t* tails = base + blocks_per_layer * block_bytes;  // 2-byte aligned: block bytes are even
    if (tail_bytes > 0) {  // a plan without a tail has empty (null) tail vectors: memcpy from null is UB
      std::memcpy(tails, tail_k.data(), tail_bytes);
      std::memcpy(tails + tail_bytes, tail_v.data(), tail_bytes);
    }
    w.tails_k.push_back(reinterpret_cast<const std::uint16_t*>(tails));
    w.tails_v.push_back(reinterpret_cast<const std::uint16_t*>(tails + tail_bytes));
  }
  w.q.resize(static_cast<std::size_t>(w.q_heads * w.head_dim));
  for (auto& x : w.q) x = normal(rng);
  w.out.resize(w.q.size());
  w.pool = std::make_unique<kvc::ThreadPool>(threads);
}

DecodeWorkload::~DecodeWorkload() = default;

bool DecodeWorkload::supports_int8_dot(const ir::ModelShape& shape, const ir::LayerPlan& plan) {
  ir::Module m = ir::make_uncompressed_module(shape, ir::Workload{1, 1, 0}, 0);
  m.layers[0] = plan;
  m.layers[0].index = 0;
  return ir::supports_int8_dot(ir::lower_layer(m, 0));
}

void DecodeWorkload::step() {
  Impl& w = *impl_;
  const int layer = w.next;
  w.next = (w.next + 1) % w.layers;
  // Threads share out the KV heads: no partial softmaxes to merge.
  w.pool->parallel_for(w.kv_heads, [&](std::int64_t item) {
    const int h = static_cast<int>(item);
    const kvc_attend_args a = w.args(layer, h);
    w.kernel->attend(&a);
  });
}

void DecodeWorkload::reference_step() {
  Impl& w = *impl_;
  for (int h = 0; h < w.kv_heads; ++h) {
    const kvc_attend_args a = w.args(0, h);
    reference::reference_attend(w.plan, w.head_dim, w.g, &a);
  }
}

std::int64_t DecodeWorkload::bytes_per_call() const {
  const Impl& w = *impl_;
  return static_cast<std::int64_t>(w.kv_heads) * (w.n_blocks * w.block_bytes + w.n_tail * w.head_dim * 2 * 2);
}
int DecodeWorkload::layers() const { return impl_->layers; }
const std::string& DecodeWorkload::kernel_name() const { return impl_->kernel->name; }
double DecodeWorkload::compile_ms() const { return impl_->kernel->compile_ms; }

namespace {

// Mean seconds per call of `fn`, after one warm-up lap over every layer.
template <typename Fn>
double time_calls(Fn&& fn, int warmup, double min_seconds, int min_calls = 3) {
  for (int i = 0; i < warmup; ++i) fn();
  std::int64_t calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    fn();
    ++calls;
    elapsed = seconds_since(start);
  } while (elapsed < min_seconds || calls < min_calls);
  return elapsed / static_cast<double>(calls);
}

}  // namespace

DecodeBenchReport run_decode_bench(const ir::ModelShape& shape, const std::vector<BenchFormat>& formats,
                                   const DecodeBenchOptions& options) {
  DecodeBenchReport report;
  report.isa = ir::to_string(llvm_backend::resolve_isa(options.isa));
  report.llc_bytes = last_level_cache_bytes();
  for (int t : options.threads) report.bandwidth_before_gbps.push_back(measure_read_bandwidth(std::size_t{1} << 30, t));
  for (std::int64_t context : options.contexts) {
    std::map<std::string, double> reference_s;  // per format, single-threaded
    for (std::size_t ti = 0; ti < options.threads.size(); ++ti) {
      const int threads = options.threads[ti];
      double fp16_s = 0;
      std::vector<std::pair<const BenchFormat*, bool>> runs;  // format, int8_dot
      for (const BenchFormat& f : formats) {
        runs.emplace_back(&f, false);
        if (options.int8_dot && DecodeWorkload::supports_int8_dot(shape, f.plan)) runs.emplace_back(&f, true);
      }
      for (const auto& [fp, int8_dot] : runs) {
        const BenchFormat& f = *fp;
        DecodeWorkload w(shape, f.plan, context, threads, options.llc_multiple, options.isa, int8_dot);
        DecodeBenchResult r;
        r.label = int8_dot ? f.label + "+i8" : f.label;
        r.int8_dot = int8_dot;
        r.kernel = w.kernel_name();
        r.context = context;
        r.threads = threads;
        r.layers_cycled = w.layers();
        r.bytes_per_call = w.bytes_per_call();
        const double s = time_calls([&] { w.step(); }, w.layers(), options.min_seconds);
        r.us_per_call = s * 1e6;
        r.gbps = static_cast<double>(r.bytes_per_call) / s / 1e9;
        if (f.plan.key.bits == 16 && f.plan.value.bits == 16 && f.plan.lowrank.rank == 0 && !int8_dot) fp16_s = s;
        if (fp16_s > 0) r.speedup_vs_fp16 = fp16_s / s;
        if (options.time_reference) {
          if (!reference_s.count(f.label)) reference_s[f.label] = time_calls([&] { w.reference_step(); }, 0, 0.0, 1);
          r.speedup_vs_reference = reference_s.at(f.label) / s;
        }
        report.results.push_back(r);
      }
    }
  }
  for (std::size_t ti = 0; ti < options.threads.size(); ++ti) {
    report.bandwidth_after_gbps.push_back(measure_read_bandwidth(std::size_t{1} << 30, options.threads[ti]));
    report.bandwidth_gbps.push_back(std::max(report.bandwidth_before_gbps[ti], report.bandwidth_after_gbps[ti]));
  }
  for (DecodeBenchResult& r : report.results) {
    const auto ti = static_cast<std::size_t>(
        std::find(options.threads.begin(), options.threads.end(), r.threads) - options.threads.begin());
    r.fraction_of_bandwidth = r.gbps / report.bandwidth_gbps[ti];
  }
  report.compile_ms = 0;
  for (ir::KernelIsa isa : {options.isa}) report.compile_ms += jit_for(isa).stats().compile_ms;
  return report;
}

std::string format_report(const DecodeBenchReport& r) {
  std::ostringstream o;
  char line[512];
  o << "isa " << r.isa << ", last-level cache " << (r.llc_bytes >> 20) << " MiB, JIT compile " << r.compile_ms
    << " ms\n";
  for (std::size_t i = 0; i < r.bandwidth_gbps.size(); ++i)
    o << "read bandwidth (1 GiB stream), thread count #" << i << ": " << r.bandwidth_gbps[i]
      << " GB/s (the larger of " << r.bandwidth_before_gbps[i] << " before the cases and " << r.bandwidth_after_gbps[i]
      << " after)\n";
  std::snprintf(line, sizeof line, "%-8s %7s %3s %10s %10s %8s %7s %9s %8s %7s  %s\n", "format", "context", "thr",
                "us/call", "MB/call", "GB/s", "of bw", "x fp16", "x ref", "layers", "kernel");
  o << line;
  for (const auto& x : r.results) {
    std::snprintf(line, sizeof line, "%-8s %7lld %3d %10.1f %10.2f %8.2f %7.2f %9.2f %8.1f %7d  %s\n",
                  x.label.c_str(), static_cast<long long>(x.context), x.threads, x.us_per_call,
                  static_cast<double>(x.bytes_per_call) / 1e6, x.gbps, x.fraction_of_bandwidth, x.speedup_vs_fp16,
                  x.speedup_vs_reference, x.layers_cycled, x.kernel.c_str());
    o << line;
  }
  return o.str();
}

}  // namespace kvc::bench
