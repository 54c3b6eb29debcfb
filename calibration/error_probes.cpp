#include "calibration/error_probes.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>

#include "calibration/evaluate.h"
#include "ir/layout.h"
#include "passes/cost_model.h"
#include "support/diagnostics.h"

namespace kvc::calibration {

const std::vector<double>& probe_keep_ratios() {
  static const std::vector<double> ratios = {1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0 / 2, 3.0 / 4};
  return ratios;
}

const std::vector<double>& layer_probe_keep_ratios() {
  static const std::vector<double> ratios = {1.0 / 16, 1.0 / 4, 1.0 / 2};
  return ratios;
}

namespace {

ir::Module uniform_probe(const ir::Module& base, const passes::LayerChoice& choice,
                         const frontend::SearchOptions& search) {
  ir::Module m = base;
  passes::apply_choices(m, std::vector<passes::LayerChoice>(m.layers.size(), choice), search);
  return m;
}

}  // namespace

void measure_error_probes(const model::Model& model, const frontend::SearchOptions& search,
                          calibration::CalibrationStats& stats, const ErrorProbeOptions& options) {
  const calibration::StatsMeta& meta = stats.meta;
  if (meta.length < 2 || meta.sequences < 1) throw Error("error probes: the stats record no calibration sequences");
  ir::Workload workload;
  workload.context = meta.length;
  workload.generate = meta.length - meta.length / 2;  // evaluate_plan decodes the second half
  const ir::Module base = ir::make_uncompressed_module(meta.model, workload, 0);
  const std::int64_t context = meta.length;

  std::vector<ir::PrecisionPair> pairs = {ir::kivi_pair(8, 8)};
  auto add = [&](const ir::PrecisionPair& pair) {
    if (std::find(pairs.begin(), pairs.end(), pair) == pairs.end()) pairs.push_back(pair);
  };
  for (const auto& pair : passes::precision_candidates(frontend::PrecisionSearch{})) add(pair);
  for (const std::string& c : search.precision.candidates) add(*ir::parse_precision_pair(c));
  for (auto [k, v] : std::initializer_list<std::pair<int, int>>{{8, 8}, {8, 4}, {4, 4}, {4, 2}, {2, 2}})
    add(ir::kivi_pair(k, v));
  // Eviction is probed on top of these pairs; the format families' pairs below only
  // for their own KL (a search prices eviction on them by the worst probed pair).
  const std::size_t retention_pairs = pairs.size();
  // Every pair of the families (each its own uniform KL: extrapolating one pair's KL
  // from another's misprices them badly enough to mislead a search).
  if (search.precision.candidates.empty())
    for (const ir::PrecisionPair& pair : passes::precision_candidates(search.precision))
      if (ir::side_problem(pair.key, meta.model.head_dim).empty() && ir::side_problem(pair.value, meta.model.head_dim).empty())
        add(pair);
  const std::vector<ir::RetentionPolicy> policies = {ir::RetentionPolicy::StreamingLLM, ir::RetentionPolicy::H2O,
                                                     ir::RetentionPolicy::SnapKV};
  const int d = meta.model.head_dim;
  std::vector<int> ranks;
  for (int r : {d / 4, d / 2, 3 * d / 4})
    if (r > 0 && r < d && std::find(ranks.begin(), ranks.end(), r) == ranks.end()) ranks.push_back(r);

  std::vector<ir::Module> plans;
  for (const auto& pair : pairs) plans.push_back(uniform_probe(base, passes::LayerChoice{pair}, search));
  for (auto policy : policies)
    for (double ratio : probe_keep_ratios()) {
      const std::int64_t keep = std::clamp<std::int64_t>(std::llround(ratio * context), 1, context);
      plans.push_back(uniform_probe(base, passes::LayerChoice{{}, policy, keep, 0}, search));
    }
  // The same policies on quantized layers, for EVERY probed pair: a quantized layer
  // evicts whole token blocks above its fp16 tail, and eviction on top of
  // quantization measures worse than the sum of the two alone (errors interact), so
  // each (pair, policy, kept fraction) combination is measured as a uniform plan.
  const ir::LayerPlan quantized = passes::make_layer_plan(base, 0, passes::LayerChoice{ir::kivi_pair(8, 8)}, search);
  const std::int64_t tail = std::max(1, ir::tail_capacity(quantized));
  std::vector<std::int64_t> quantized_keeps;
  for (double ratio : probe_keep_ratios()) {
    const std::int64_t keep = std::clamp<std::int64_t>(std::llround(ratio * context), tail, context);
    if (keep < context && (quantized_keeps.empty() || keep > quantized_keeps.back())) quantized_keeps.push_back(keep);
  }
  if (quantized_keeps.empty()) throw Error("error probes: the calibration length leaves no room to evict above the fp16 tail");
  for (std::size_t q = 0; q < retention_pairs; ++q)
    for (auto policy : policies)
      for (std::int64_t keep : quantized_keeps)
        plans.push_back(uniform_probe(base, passes::LayerChoice{pairs[q], policy, keep, 0}, search));
  for (int r : ranks) plans.push_back(uniform_probe(base, passes::LayerChoice{{}, ir::RetentionPolicy::Full, 0, r}, search));
  // One layer evicting, every other layer keeping everything: how a uniform plan's
  // eviction damage splits across layers (early layers of stories260K lose ~10x more
  // than late ones at the same kept fraction).
  const int L = meta.model.layers;
  for (int l = 0; l < L; ++l)
    for (auto policy : policies)
      for (double ratio : layer_probe_keep_ratios()) {
        const std::int64_t keep = std::clamp<std::int64_t>(std::llround(ratio * context), 1, context);
        ir::Module m = base;
        m.layers[l] = passes::make_layer_plan(base, l, passes::LayerChoice{{}, policy, keep, 0}, search);
        plans.push_back(std::move(m));
      }

  calibration::EvalOptions eval;
  eval.sequences = options.sequences > 0 ? options.sequences : meta.sequences;
  eval.length = meta.length;
  eval.seed = meta.seed;
  eval.threads = options.threads;
  eval.source = options.source;
  const bool sampled = meta.source.rfind("sampled", 0) == 0;
  if (sampled ? options.source.from_file() : meta.source != options.source.describe())
    throw Error("error probes: the stats were measured on " + meta.source + ", the probes would run on " +
                options.source.describe() + "; they must see the calibration sequences");
  if (options.progress)
    *options.progress << "kvc: measuring " << plans.size() << " end-to-end error probes on " << eval.sequences
                      << " calibration sequences x " << eval.length << " tokens\n";
  const std::vector<calibration::EvalReport> reports = calibration::evaluate_plans(model, plans, eval, "error probe");

  std::size_t i = 0;
  calibration::StatsTensor quant{{static_cast<std::int64_t>(pairs.size()), 3}, {}};
  for (const auto& pair : pairs) {
    quant.data.push_back(static_cast<float>(ir::side_code(pair.key)));
    quant.data.push_back(static_cast<float>(ir::side_code(pair.value)));
    quant.data.push_back(static_cast<float>(reports[i++].kl_mean));
  }
  const auto R = static_cast<std::int64_t>(probe_keep_ratios().size());
  calibration::StatsTensor retention{{static_cast<std::int64_t>(policies.size()), R}, {}};
  for (std::size_t p = 0; p < policies.size(); ++p)
    for (std::int64_t r = 0; r < R; ++r) retention.data.push_back(static_cast<float>(reports[i++].kl_mean));
  // The ratios the probes really kept (token counts are whole).
  calibration::StatsTensor ratios{{R}, {}};
  for (double ratio : probe_keep_ratios())
    ratios.data.push_back(static_cast<float>(
        static_cast<double>(std::clamp<std::int64_t>(std::llround(ratio * context), 1, context)) / context));
  const auto Q = static_cast<std::int64_t>(quantized_keeps.size());
  calibration::StatsTensor quantized_retention{
      {static_cast<std::int64_t>(pairs.size()), static_cast<std::int64_t>(policies.size()), Q}, {}};
  for (std::size_t q = 0; q < pairs.size(); ++q)
    for (std::size_t p = 0; p < policies.size(); ++p)
      for (std::int64_t r = 0; r < Q; ++r)
        quantized_retention.data.push_back(
            q < retention_pairs ? static_cast<float>(std::max(0.0, reports[i++].kl_mean - reports[q].kl_mean))
                                : std::numeric_limits<float>::quiet_NaN());
  calibration::StatsTensor quantized_ratios{{Q}, {}};
  for (std::int64_t keep : quantized_keeps) quantized_ratios.data.push_back(static_cast<float>(static_cast<double>(keep) / context));
  calibration::StatsTensor rank{{static_cast<std::int64_t>(ranks.size()), 2}, {}};
  for (int r : ranks) {
    rank.data.push_back(static_cast<float>(r));
    rank.data.push_back(static_cast<float>(reports[i++].kl_mean));
  }
  const auto RL = static_cast<std::int64_t>(layer_probe_keep_ratios().size());
  calibration::StatsTensor layer_retention{{L, static_cast<std::int64_t>(policies.size()), RL}, {}};
  for (std::int64_t n = 0; n < L * static_cast<std::int64_t>(policies.size()) * RL; ++n)
    layer_retention.data.push_back(static_cast<float>(reports[i++].kl_mean));
  calibration::StatsTensor layer_ratios{{RL}, {}};
  for (double ratio : layer_probe_keep_ratios())
    layer_ratios.data.push_back(static_cast<float>(
        static_cast<double>(std::clamp<std::int64_t>(std::llround(ratio * context), 1, context)) / context));
  stats.tensors["e2e_layer_retention_kl"] = std::move(layer_retention);
  stats.tensors["e2e_layer_keep_ratios"] = std::move(layer_ratios);
  stats.tensors["e2e_quant_kl"] = std::move(quant);
  stats.tensors["e2e_retention_kl"] = std::move(retention);
  stats.tensors["e2e_keep_ratios"] = std::move(ratios);
  stats.tensors["e2e_rank_kl"] = std::move(rank);
  stats.tensors["e2e_retention_quantized_kl"] = std::move(quantized_retention);
  stats.tensors["e2e_keep_ratios_quantized"] = std::move(quantized_ratios);
  (void)passes::has_end_to_end_calibration(stats);  // checks what was just stored
}

}  // namespace kvc::calibration
