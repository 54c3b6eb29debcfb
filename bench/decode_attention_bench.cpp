// Google Benchmark driver for decode attention on a Llama-3.1-8B layer.
//   decode_attention_bench                 one benchmark per format x context x threads
//   decode_attention_bench --summary       the full report (bandwidth, GB/s, fraction of
//                                          bandwidth, speed-ups over fp16 and reference),
//                                          with "+i8" rows for the int8-dot kernel option
// Each iteration is one layer decode step; the steps cycle through enough layers'
// caches to exceed the last-level cache several times (see decode_bench.h).
// The compute/... cases instead reread one layer's cache at context 4096 (about
// 4-17 MB, from the CPU's caches): the kernel's own work without DRAM, steadier on
// a VM whose bandwidth drifts, for A/B comparisons of kernel changes.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "bench/decode_bench.h"

namespace {

using namespace kvc;

double bandwidth_gbps(int threads) {
  static std::map<int, double> measured;
  auto it = measured.find(threads);
  if (it == measured.end()) it = measured.emplace(threads, bench::measure_read_bandwidth(std::size_t{1} << 30, threads)).first;
  return it->second;
}

void decode_step(benchmark::State& state, const bench::BenchFormat& format, std::int64_t context, int threads,
                 bool int8_dot, double llc_multiple) {
  bench::DecodeWorkload w(bench::llama31_8b_shape(), format.plan, context, threads, llc_multiple, ir::KernelIsa::Host,
                          int8_dot);
  for (int i = 0; i < w.layers(); ++i) w.step();  // warm-up lap: page faults and code out of the timing
  for (auto _ : state) w.step();
  const double bytes = static_cast<double>(w.bytes_per_call());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes) * state.iterations());
  state.counters["MB_per_call"] = bytes / 1e6;
  if (llc_multiple > 0)  // a fraction of DRAM bandwidth means nothing for a cache read from cache
    state.counters["frac_bw"] = benchmark::Counter(bytes / 1e9 / bandwidth_gbps(threads),
                                                   benchmark::Counter::kIsIterationInvariantRate);
  state.counters["layers"] = w.layers();
  state.SetLabel(w.kernel_name());
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--summary") == 0) {
      bench::DecodeBenchOptions options;
      options.int8_dot = true;
      const auto report = bench::run_decode_bench(bench::llama31_8b_shape(), bench::default_formats(), options);
      std::fputs(bench::format_report(report).c_str(), stdout);
      return 0;
    }
  }
  static const auto formats = bench::default_formats();
  for (const auto& f : formats)
    for (bool int8_dot : {false, true}) {
      if (int8_dot && !bench::DecodeWorkload::supports_int8_dot(bench::llama31_8b_shape(), f.plan)) continue;
      const std::string label = f.label + (int8_dot ? "+i8" : "");
      for (std::int64_t context : {4096, 32768})
        for (int threads : {1, 2}) {
          const std::string name = "decode/" + label + "/ctx" + std::to_string(context) + "/threads" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), decode_step, f, context, threads, int8_dot, 4.0)
              ->UseRealTime()
              ->MeasureProcessCPUTime()
              ->MinTime(0.3);
        }
      benchmark::RegisterBenchmark(("compute/" + label + "/ctx4096/threads1").c_str(), decode_step, f, std::int64_t{4096}, 1,
                                   int8_dot, 0.0)
          ->UseRealTime()
          ->MinTime(0.3);
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
