#include "passes/pass_manager.h"

#include <cstdio>

#include "ir/printer.h"
#include "passes/cake.h"
#include "passes/estimate.h"
#include "passes/joint.h"
#include "passes/kvtuner.h"
#include "passes/legalize.h"
#include "passes/prefixkv.h"
#include "passes/uniform.h"
#include "passes/xkv.h"
#include "support/diagnostics.h"
#include "support/text.h"

namespace kvc::passes {

const std::vector<PassInfo>& pass_registry() {
  static const std::vector<PassInfo> registry = {
      {"uniform", "one format for every layer: uniform<K4V2>, uniform<fp16>, or the most precise that fits",
       [](const std::string& a) { return std::make_unique<UniformPass>(a); }},
      {"prefixkv", "tokens per layer from one global prefix-attention level (PrefixKV): prefixkv<K4V2,h2o>",
       [](const std::string& a) { return std::make_unique<PrefixKVPass>(a); }},
      {"cake", "tokens per layer in proportion to attention entropy x variance (temperatures tuned unless given), CAKE eviction: cake<tau1=1,tau2=1>",
       [](const std::string& a) { return std::make_unique<CakePass>(a); }},
      {"xkv", "low-rank keys in bases shared by adjacent layers, rank per group from the spectra: xkv<group=4,energy=0.9>",
       [](const std::string& a) { return std::make_unique<XKVPass>(a); }},
      {"kvtuner", "per-layer K/V precision pairs under the budget (Pareto pruning, clustering, exact knapsack)",
       [](const std::string&) { return std::make_unique<KVTunerPass>(); }},
      {"joint", "bits, kept tokens and key rank of every layer under one budget (exact knapsack over bytes)",
       [](const std::string&) { return std::make_unique<JointPass>(); }},
      {"estimate", "exact bytes per layer and in total",
       [](const std::string&) { return std::make_unique<EstimatePass>(); }},
      {"legalize", "verify the plan and check that it fits the budget",
       [](const std::string&) { return std::make_unique<LegalizePass>(); }},
  };
  return registry;
}

std::vector<PassInvocation> parse_pipeline(const std::string& text) {
  std::vector<PassInvocation> out;
  std::vector<std::string> names;
  for (const auto& info : pass_registry()) names.push_back(info.name);
  std::size_t i = 0;
  while (i <= text.size()) {
    std::size_t end = i;
    int depth = 0;
    while (end < text.size() && (depth > 0 || text[end] != ',')) {
      if (text[end] == '<') ++depth;
      if (text[end] == '>') --depth;
      ++end;
    }
    std::string item = text.substr(i, end - i);
    PassInvocation inv;
    if (auto lt = item.find('<'); lt != std::string::npos) {
      if (item.back() != '>') throw Error({}, "pipeline", "'" + item + "': expected '>' closing the pass argument");
      inv.name = item.substr(0, lt);
      inv.argument = item.substr(lt + 1, item.size() - lt - 2);
    } else {
      inv.name = item;
    }
    if (inv.name.empty()) throw Error({}, "pipeline", "empty pass name in '" + text + "'");
    bool known = false;
    for (const auto& n : names) known |= n == inv.name;
    if (!known) {
      std::string msg = "unknown pass '" + inv.name + "'";
      if (auto s = closest_match(inv.name, names)) msg += "; did you mean '" + *s + "'?";
      std::string all;
      for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
      throw Error({}, "pipeline", msg + " (passes: " + all + ")");
    }
    out.push_back(inv);
    i = end + 1;
  }
  return out;
}

std::string default_pipeline(const PassContext& ctx) {
  // The search passes plan from calibration statistics; each tunes its knob and
  // `estimate,legalize` check the result. `joint` tunes every knob at once.
  // Without statistics (calibration.stats is optional) they cannot run: the uniform
  // ladder plans instead, and says so (UniformPass notes the method it stands in for).
  const std::string first = calibrated_search_pass(ctx);
  const bool have_stats = ctx.stats || !ctx.calibration_stats.empty();
  return (have_stats ? first : std::string("uniform")) + ",estimate,legalize";
}

std::string calibrated_search_pass(const PassContext& ctx) {
  const auto& search = ctx.search;
  if (search.joint) return "joint";
  if (search.precision.method == "kvtuner") return "kvtuner";
  if (search.retention.method == "prefixkv") return "prefixkv";
  if (search.retention.method == "cake") return "cake";
  if (search.lowrank.method == "xkv") return "xkv";
  return "uniform";
}

PassManager::PassManager(const std::vector<PassInvocation>& pipeline) {
  for (const auto& inv : pipeline)
    for (const auto& info : pass_registry())
      if (info.name == inv.name) passes_.push_back(info.create(inv.argument));
}

void PassManager::run(ir::Module& module, PassContext& ctx) {
  timings_.clear();
  for (auto& pass : passes_) {
    const auto start = std::chrono::steady_clock::now();
    pass->run(module, ctx);
    const auto stop = std::chrono::steady_clock::now();
    timings_.push_back({std::string(pass->name()), std::chrono::duration<double>(stop - start).count()});
    if (print_after_all_) {
      *print_after_all_ << "; *** IR Dump After " << pass->name() << " ***\n" << ir::print_module(module) << "\n";
    }
  }
}

void print_timings(std::ostream& out, const std::vector<PassTiming>& timings) {
  double total = 0;
  for (const auto& t : timings) total += t.seconds;
  out << "===-------------------------------------------------------------------------===\n"
      << "                      ... Pass execution timing report ...\n"
      << "===-------------------------------------------------------------------------===\n"
      << "  Total Execution Time: " << total << " seconds\n\n"
      << "   ---Wall Time---   --- Name ---\n";
  char line[160];
  for (const auto& t : timings) {
    std::snprintf(line, sizeof line, "   %9.6f (%5.1f%%)  %s\n", t.seconds, total > 0 ? 100.0 * t.seconds / total : 0.0,
                  t.name.c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "   %9.6f (100.0%%)  Total\n", total);
  out << line;
}

}  // namespace kvc::passes
