// How long each search pass takes to plan an 80-layer model: specs/llama-3.1-70b.yaml
// (Llama-3.1-70B, 128K context, 8 GiB budget) with generated calibration statistics
// of that shape (tests/test_support/synthetic_stats.h). The design target is under 2 s per pass.
// Two pricings: plan_llama70b/* the per-layer proxies, plan_llama70b_e2e/* the
// end-to-end probes (single-layer retention probes included) that real calibrated
// stats carry.
// Passes are looked up in pass_registry() by name; those not registered are skipped.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "frontend/spec.h"
#include "ir/layout.h"
#include "passes/pass_manager.h"
#include "support/diagnostics.h"
#include "test_support/synthetic_stats.h"

namespace {

struct Workbench {
  kvc::frontend::Spec spec;
  std::shared_ptr<const kvc::calibration::CalibrationStats> stats, e2e_stats;
};

const Workbench& workbench() {
  static const Workbench w = [] {
    Workbench out{kvc::frontend::load_spec(std::string(KVC_SOURCE_DIR) + "/specs/llama-3.1-70b.yaml"), nullptr, nullptr};
    out.stats = std::make_shared<const kvc::calibration::CalibrationStats>(kvc::testing::synthetic_stats(out.spec.model));
    kvc::testing::SyntheticStatsOptions e2e;
    e2e.end_to_end_probes = true;
    out.e2e_stats =
        std::make_shared<const kvc::calibration::CalibrationStats>(kvc::testing::synthetic_stats(out.spec.model, e2e));
    return out;
  }();
  return w;
}

void plan_with(benchmark::State& state, const std::string& pass, bool end_to_end) {
  const Workbench& w = workbench();
  const auto pipeline = kvc::passes::parse_pipeline(pass);
  std::int64_t bytes = 0;
  for (auto _ : state) {
    kvc::passes::PassContext ctx;
    ctx.search = w.spec.search;
    ctx.stats = end_to_end ? w.e2e_stats : w.stats;
    kvc::ir::Module m = w.spec.to_module();
    kvc::passes::PassManager(pipeline).run(m, ctx);
    bytes = kvc::ir::total_bytes(m);
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["plan_bytes"] = static_cast<double>(bytes);
  state.counters["budget_bytes"] = static_cast<double>(w.spec.budget_bytes);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const char* name : {"prefixkv", "cake", "xkv", "kvtuner", "joint"}) {
    bool registered = false;
    for (const auto& info : kvc::passes::pass_registry()) registered |= info.name == name;
    if (!registered) continue;
    for (bool end_to_end : {false, true})
      benchmark::RegisterBenchmark((std::string(end_to_end ? "plan_llama70b_e2e/" : "plan_llama70b/") + name).c_str(),
                                   [name, end_to_end](benchmark::State& s) { plan_with(s, name, end_to_end); })
          ->Unit(benchmark::kMillisecond)
          ->Iterations(3);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
