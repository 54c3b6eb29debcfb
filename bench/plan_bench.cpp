// How long each search pass takes to plan an 80-layer model: specs/llama-3.1-70b.yaml
// (Llama-3.1-70B, 128K context, 8 GiB budget) with generated calibration statistics
// of that shape (tests/stats/synthetic_stats.h). The design target is under 2 s per pass.
// Three pricings: plan_llama70b/* the per-layer proxies, plan_llama70b_e2e/* the
// end-to-end probes (single-layer retention probes included) that real calibrated
// stats carry, and plan_llama70b_formats/* those probes with every format family
// measured (KIVI's, per-token, rotated per-token, rotated codebook) and the search
// choosing among all of them (search.precision.formats).
// Passes are looked up in pass_registry() by name; those not registered are skipped.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "frontend/spec.h"
#include "ir/layout.h"
#include "passes/pass_manager.h"
#include "support/diagnostics.h"
#include "stats/synthetic_stats.h"

namespace {

struct Workbench {
  kvc::frontend::Spec spec;
  std::shared_ptr<const kvc::calibration::CalibrationStats> stats, e2e_stats, formats_stats;
};

enum class Pricing { Proxy, EndToEnd, Formats };
const std::vector<std::string> kFamilies = {"kivi", "t", "tr", "cr"};

const Workbench& workbench() {
  static const Workbench w = [] {
    Workbench out{kvc::frontend::load_spec(std::string(KVC_SOURCE_DIR) + "/specs/llama-3.1-70b.yaml"), nullptr, nullptr,
                  nullptr};
    out.stats = std::make_shared<const kvc::calibration::CalibrationStats>(kvc::calibration::synthetic_stats(out.spec.model));
    kvc::calibration::SyntheticStatsOptions e2e;
    e2e.end_to_end_probes = true;
    out.e2e_stats =
        std::make_shared<const kvc::calibration::CalibrationStats>(kvc::calibration::synthetic_stats(out.spec.model, e2e));
    e2e.families = kFamilies;
    out.formats_stats =
        std::make_shared<const kvc::calibration::CalibrationStats>(kvc::calibration::synthetic_stats(out.spec.model, e2e));
    return out;
  }();
  return w;
}

void plan_with(benchmark::State& state, const std::string& pass, Pricing pricing) {
  const Workbench& w = workbench();
  const auto pipeline = kvc::passes::parse_pipeline(pass);
  std::int64_t bytes = 0;
  for (auto _ : state) {
    kvc::passes::PassContext ctx;
    ctx.search = w.spec.search;
    ctx.stats = pricing == Pricing::Proxy ? w.stats : pricing == Pricing::EndToEnd ? w.e2e_stats : w.formats_stats;
    if (pricing == Pricing::Formats) {
      ctx.search.precision.formats = kFamilies;
      ctx.search.precision.candidates.clear();  // the spec's candidates would be the whole space
    }
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
    for (Pricing pricing : {Pricing::Proxy, Pricing::EndToEnd, Pricing::Formats}) {
      const std::string prefix = pricing == Pricing::Proxy      ? "plan_llama70b/"
                                 : pricing == Pricing::EndToEnd ? "plan_llama70b_e2e/"
                                                                : "plan_llama70b_formats/";
      benchmark::RegisterBenchmark((prefix + name).c_str(),
                                   [name, pricing](benchmark::State& s) { plan_with(s, name, pricing); })
          ->Unit(benchmark::kMillisecond)
          ->Iterations(3);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
