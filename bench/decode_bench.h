#pragma once
// Decode-attention benchmark: one layer's decode step (every KV head, its GQA
// query heads) over a synthetic cache of a given format and context, timed the
// way a real decode step runs: each call reads its cache from memory, because
// the calls cycle through as many layers' caches as it takes to exceed the
// last-level cache several times over. Synthetic data serve speed only.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/kernel_spec.h"
#include "ir/plan.h"

namespace kvc::bench {

struct BenchFormat {
  std::string label;  // "K4V2"
  ir::LayerPlan plan;
};

// fp16, K8V8, K4V4, K4V2, K2V2: keys per channel and values per token, group 32, residual 128.
std::vector<BenchFormat> default_formats();
// ModelShape of Llama-3.1-8B (32 q heads, 8 KV heads, head_dim 128).
ir::ModelShape llama31_8b_shape();

// Read bandwidth of this machine in GB/s (1e9 bytes/s): a streaming read of
// `bytes` (>= 1 GiB is meaningful) by `threads` threads, best of `repeats`.
double measure_read_bandwidth(std::size_t bytes, int threads, int repeats = 3);

// The last-level cache size in bytes (sysconf), or 32 MiB when unknown.
std::size_t last_level_cache_bytes();

struct DecodeBenchOptions {
  std::vector<std::int64_t> contexts{4096, 32768};
  std::vector<int> threads{1, 2};
  double min_seconds = 0.3;       // timing per case
  double llc_multiple = 4.0;      // caches cycled through >= this many LLCs (and >= 256 MiB);
                                  // 0: one layer's cache, reread from cache by every call
  bool time_reference = true;     // also time backends/reference (slow) for the speed-up column
  ir::KernelIsa isa = ir::KernelIsa::Host;
  // Also time each format whose keys or values admit it with the int8-dot kernel option
  // (ir::KernelSpec::int8_dot), as an extra row labelled "<format>+i8".
  bool int8_dot = false;
};

struct DecodeBenchResult {
  std::string label;
  std::string kernel;
  bool int8_dot = false;           // the kernel has the int8-dot option (keys and/or values)
  std::int64_t context = 0;
  int threads = 1;
  double us_per_call = 0;          // one layer decode step (all KV heads)
  std::int64_t bytes_per_call = 0; // cache bytes the call reads (blocks + tail)
  double gbps = 0;
  double fraction_of_bandwidth = 0;
  double speedup_vs_fp16 = 0;      // 0 when no fp16 case ran at this context/threads
  double speedup_vs_reference = 0; // 0 when not timed
  int layers_cycled = 0;
};

struct DecodeBenchReport {
  std::string isa;
  std::size_t llc_bytes = 0;
  // Per entry of options.threads: the larger of two probes, one before the cases
  // and one after them (this VM's bandwidth drifts within a run, and a probe that
  // caught a slow moment would inflate every fraction); the probes themselves too.
  std::vector<double> bandwidth_gbps;
  std::vector<double> bandwidth_before_gbps, bandwidth_after_gbps;
  double compile_ms = 0;
  std::vector<DecodeBenchResult> results;
};

// Runs every format x context x thread count. Throws kvc::Error for a format
// that has no kernel.
DecodeBenchReport run_decode_bench(const ir::ModelShape& shape, const std::vector<BenchFormat>& formats,
                                   const DecodeBenchOptions& options = {});

// A fixed-width text table of a report.
std::string format_report(const DecodeBenchReport& report);

// One prepared case, for drivers that time steps themselves (Google Benchmark).
class DecodeWorkload {
 public:
  DecodeWorkload(const ir::ModelShape& shape, const ir::LayerPlan& plan, std::int64_t context, int threads,
                 double llc_multiple, ir::KernelIsa isa, bool int8_dot = false);
  // Whether a plan's keys admit the int8-dot option for this shape.
  static bool supports_int8_dot(const ir::ModelShape& shape, const ir::LayerPlan& plan);
  ~DecodeWorkload();
  // One layer's decode step with the generated kernel; the next call uses the next layer's cache.
  void step();
  // The same step through the reference kernels (single thread).
  void reference_step();
  std::int64_t bytes_per_call() const;
  int layers() const;
  const std::string& kernel_name() const;
  double compile_ms() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvc::bench
