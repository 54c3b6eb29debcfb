// `kvc explain PLAN --stats F [--json]`: why each layer got what it got: its
// sensitivity, its predicted error by knob, and its nearest alternatives (from the
// joint search's candidate space) with their bytes and predicted error.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <nlohmann/json.hpp>

#include "stats/stats_file.h"
#include "frontend/spec.h"
#include "ir/layout.h"
#include "ir/parser.h"
#include "ir/precision.h"
#include "passes/cost_model.h"
#include "passes/joint.h"
#include "search_commands.h"

namespace kvc::cli {
namespace {

struct ExplainOptions {
  std::string plan, stats;
  bool json = false;
  int alternatives = 3;
};


int explain(const ExplainOptions& o) {
  const ir::Module plan = ir::read_module_file(o.plan);
  const calibration::CalibrationStats stats = calibration::read_stats_file(o.stats);
  const passes::PlanErrorPrediction prediction = passes::predict_plan_error(plan, stats);
  // Alternatives use the plan's own group and residual (of its first compressed layer).
  frontend::SearchOptions options;
  for (const auto& layer : plan.layers)
    if (layer.residual > 0) {
      options.precision.residual = layer.residual;
      if (layer.key.axis == ir::QuantAxis::PerChannel) options.precision.group = layer.key.group;
      break;
    }
  // ... and its format families (KIVI's always), so a layer's format is set against
  // the others of its families and against KIVI's alone.
  const int d = plan.model.head_dim;
  std::vector<std::string> families = {"kivi"};
  for (const auto& layer : plan.layers) {
    for (const ir::SideFormat& side : {ir::key_side(layer.key, ir::key_dims(layer, d)), ir::value_side(layer.value, d)}) {
      if (side.bits >= 16) continue;
      const std::string family = ir::family_name(side);
      if (std::find(families.begin(), families.end(), family) == families.end()) families.push_back(family);
    }
    for (const ir::QuantFormat* f : {&layer.key, &layer.value})
      if (f->rotation == ir::Rotation::Hadamard) options.precision.seed = f->seed;
  }
  if (families.size() > 1) options.precision.formats = families;
  const auto tables =
      passes::build_cost_tables(plan, stats, options, passes::joint_candidate_space(plan, options));
  nlohmann::json layers = nlohmann::json::array();
  double best_rate = 0;  // the cheapest error reduction per byte any layer still offers
  for (std::size_t l = 0; l < plan.layers.size(); ++l) {
    const int layer = static_cast<int>(l);
    const auto& b = prediction.layers[l];
    const std::int64_t bytes = ir::layer_bytes(plan, layer).total();
    nlohmann::json alts = nlohmann::json::array();
    const auto frontier = passes::pareto_frontier(tables[l]);
    // Nearest frontier points below and above the layer's bytes.
    std::vector<const passes::CostEntry*> near;
    for (const auto& e : frontier)
      if (e.bytes < bytes) near.push_back(&e);
    if (near.size() > static_cast<std::size_t>(o.alternatives)) near.erase(near.begin(), near.end() - o.alternatives);
    for (const auto& e : frontier)
      if (e.bytes > bytes && near.size() < static_cast<std::size_t>(2 * o.alternatives)) near.push_back(&e);
    for (const auto* e : near) {
      const double d_error = e->error - b.total;
      const double d_bytes = static_cast<double>(e->bytes - bytes);
      if (d_bytes > 0 && d_error < 0) best_rate = std::max(best_rate, -d_error / d_bytes);
      alts.push_back({{"choice", passes::describe(e->choice)}, {"bytes", e->bytes}, {"predicted_error", e->error}});
    }
    // Why not KIVI: the least-error KIVI-only setting in no more bytes.
    const passes::CostEntry* kivi = nullptr;
    for (const auto& e : tables[l]) {
      const bool kivi_only = e.choice.pair.key.quantizer == ir::Quantizer::Kivi && !e.choice.pair.key.rotated &&
                             e.choice.pair.value.quantizer == ir::Quantizer::Kivi && !e.choice.pair.value.rotated;
      if (kivi_only && e.bytes <= bytes && (!kivi || e.error < kivi->error)) kivi = &e;
    }
    const nlohmann::json kivi_json =
        kivi ? nlohmann::json{{"choice", passes::describe(kivi->choice)}, {"bytes", kivi->bytes}, {"predicted_error", kivi->error}}
             : nlohmann::json(nullptr);
    layers.push_back({{"layer", layer},
                      {"sensitivity", passes::layer_sensitivity(stats, layer)},
                      {"bytes", bytes},
                      {"predicted_error", b.total},
                      {"quant_error", b.quant},
                      {"retention_error", b.retention},
                      {"rank_error", b.rank},
                      {"format", ir::PrecisionPair{ir::key_side(plan.layers[l].key, ir::key_dims(plan.layers[l], d)),
                                                   ir::value_side(plan.layers[l].value, d)}
                                     .name()},
                      {"best_kivi", kivi_json},
                      {"alternatives", alts}});
  }
  if (o.json) {
    nlohmann::json j{{"plan", o.plan},
                     {"bytes", ir::total_bytes(plan)},
                     {"budget", plan.budget_bytes},
                     {"predicted_error", prediction.total},
                     {"best_upgrade_rate", best_rate},
                     {"layers", layers}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("plan %s: %lld of %lld budget bytes, predicted error %.4g\n", o.plan.c_str(),
              static_cast<long long>(ir::total_bytes(plan)), static_cast<long long>(plan.budget_bytes),
              prediction.total);
  for (const auto& j : layers) {
    std::printf("layer %d: %s, sensitivity %.4g, %lld bytes, predicted error %.4g (quant %.3g, retention %.3g, rank %.3g)\n",
                j["layer"].get<int>(), j["format"].get<std::string>().c_str(), j["sensitivity"].get<double>(), j["bytes"].get<long long>(),
                j["predicted_error"].get<double>(), j["quant_error"].get<double>(),
                j["retention_error"].get<double>(), j["rank_error"].get<double>());
    if (const auto& k = j["best_kivi"]; !k.is_null() && k["choice"] != j["format"])
      std::printf("    KIVI's best in no more bytes, %s, predicted error %+.4g: %s\n", k["choice"].get<std::string>().c_str(),
                  k["predicted_error"].get<double>() - j["predicted_error"].get<double>(),
                  k["predicted_error"].get<double>() > j["predicted_error"].get<double>()
                      ? "this layer's format loses less"
                      : "as good or better (the plan was not planned with these stats)");
    for (const auto& a : j["alternatives"]) {
      const long long d_bytes = a["bytes"].get<long long>() - j["bytes"].get<long long>();
      const double d_error = a["predicted_error"].get<double>() - j["predicted_error"].get<double>();
      std::printf("    %-32s would %s %.1f KiB at %+.4g predicted error\n", a["choice"].get<std::string>().c_str(),
                  d_bytes < 0 ? "save" : "cost", std::abs(static_cast<double>(d_bytes)) / 1024.0, d_error);
    }
  }
  std::printf("the best upgrade any layer offers removes %.4g predicted error per KiB: a plan at its budget has no "
              "upgrade it can afford\n",
              best_rate * 1024.0);
  return 0;
}

}  // namespace

CommandRunner add_explain_command(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  CLI::App* sub = app.add_subcommand("explain", "Explain why each layer of a plan got its format: sensitivity, alternatives");
  sub->add_option("plan", o->plan, "plan IR text (kvc compile --emit plan)")->required()->check(CLI::ExistingFile);
  sub->add_option("--stats", o->stats, "calibration stats (kvc calibrate)")->required()->check(CLI::ExistingFile);
  sub->add_option("--alternatives", o->alternatives, "alternatives shown on each side")->capture_default_str()
      ->check(CLI::Range(1, 64));
  sub->add_flag("--json", o->json, "as JSON");
  return [o] { return explain(*o); };
}

}  // namespace kvc::cli
