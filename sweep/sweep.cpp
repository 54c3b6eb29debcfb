#include "sweep/sweep.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <ostream>

#include "calibration/evaluate.h"
#include "ir/layout.h"
#include "passes/cost_model.h"
#include "passes/pass_manager.h"
#include "passes/uniform.h"
#include "calibration/error_probes.h"
#include "support/diagnostics.h"

namespace kvc::sweep {

const std::vector<std::string>& sweep_methods() {
  static const std::vector<std::string> methods = {"kivi",     "streamingllm", "h2o", "snapkv", "kvtuner",
                                                   "prefixkv", "cake",         "xkv", "joint"};
  return methods;
}

std::string uniform_baseline_of(const std::string& method) {
  if (method == "kvtuner" || method == "xkv") return "kivi";  // precision / rank vs uniform quantization
  if (method == "prefixkv") return "h2o";                     // prefixkv keeps H2O's tokens per layer
  if (method == "cake") return "snapkv";                      // CAKE selects from window attention like SnapKV
  return "";
}

namespace {

bool registered(const std::string& pass) {
  for (const auto& info : passes::pass_registry())
    if (info.name == pass) return true;
  return false;
}

ir::Module base_module(const frontend::Spec& spec, double budget, int length) {
  ir::Module m = spec.to_module();
  m.workload.context = length;
  m.workload.batch = 1;
  // The evaluation decodes the second half of each sequence (calibration/evaluate.h).
  m.workload.generate = std::min<std::int64_t>(m.workload.generate, length / 2);
  m.budget_bytes = static_cast<std::int64_t>(std::floor(budget * static_cast<double>(ir::fp16_bytes(m))));
  return m;
}

passes::PassContext context_for(const frontend::Spec& spec, const calibration::CalibrationStats& stats) {
  passes::PassContext ctx;
  ctx.search = spec.search;
  ctx.stats = std::make_shared<const calibration::CalibrationStats>(stats);
  return ctx;
}

// Uniform retention with `policy` at the same bytes, by eviction only: keys and
// values stay fp16 and every layer keeps the most tokens that fit.
std::optional<ir::Module> uniform_retention_plan(const ir::Module& start, const frontend::Spec& spec,
                                                 const std::string& policy) {
  frontend::RetentionSearch retention = spec.search.retention;
  retention.method = policy;
  ir::Module m = start;
  passes::apply_uniform_precision(m, ir::PrecisionPair{}, spec.search.precision);
  auto tokens = passes::largest_fitting_retention(m, m.budget_bytes, retention);
  if (!tokens) return std::nullopt;
  if (*tokens < m.workload.context) passes::apply_uniform_retention(m, *tokens, retention);
  if (ir::total_bytes(m) > m.budget_bytes) return std::nullopt;
  return m;
}

}  // namespace

std::optional<ir::Module> build_sweep_plan(const std::string& method, const frontend::Spec& spec,
                                           const calibration::CalibrationStats& stats, double budget, int length,
                                           std::string* why) {
  ir::Module m = base_module(spec, budget, length);
  try {
    if (method == "streamingllm" || method == "h2o" || method == "snapkv") {
      auto plan = uniform_retention_plan(m, spec, method);
      if (!plan && why) *why = "no uniform " + method + " plan fits the budget";
      return plan;
    }
    const std::string pass = method == "kivi" ? "uniform" : method;
    // The retention passes compress by eviction only (fp16 keys and values), like
    // their baselines; the other passes choose everything their knob leaves uniform.
    const std::string pipeline = method == "prefixkv" || method == "cake" ? pass + "<fp16>" : pass;
    if (!registered(pass)) {
      if (why) *why = "pass '" + pass + "' is not registered";
      return std::nullopt;
    }
    passes::PassContext ctx = context_for(spec, stats);
    if (method == "kivi") ctx.search.retention.method = "streamingllm";
    passes::PassManager pm(passes::parse_pipeline(pipeline + ",estimate,legalize"));
    pm.run(m, ctx);
    return m;
  } catch (const Error& e) {
    if (why) *why = e.message();
    return std::nullopt;
  }
}

double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  if (n < 2) return 0.0;
  auto ranks = [n](const std::vector<double>& v) {
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return v[x] < v[y]; });
    std::vector<double> r(n);
    for (std::size_t i = 0; i < n;) {
      std::size_t j = i;
      while (j + 1 < n && v[order[j + 1]] == v[order[i]]) ++j;
      const double avg = 0.5 * static_cast<double>(i + j) + 1.0;
      for (std::size_t k = i; k <= j; ++k) r[order[k]] = avg;
      i = j + 1;
    }
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ma += ra[i];
    mb += rb[i];
  }
  ma /= n;
  mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

SweepResult run_sweep(const model::Model& model, const frontend::Spec& spec,
                      const calibration::CalibrationStats& stats_in, const SweepOptions& options) {
  if (options.budgets.empty()) throw Error({}, "--budgets", "no budget to sweep");
  for (double b : options.budgets)
    if (!(b > 0 && b <= 1)) throw Error({}, "--budgets", std::to_string(b) + " is not a fraction in (0, 1]");
  const auto& methods = options.methods.empty() ? sweep_methods() : options.methods;
  SweepResult out;
  calibration::CalibrationStats stats = stats_in;
  // Plans are priced on the calibration sequences, never on the evaluation's.
  if (options.source.from_file()) {
    if (stats.meta.source == options.source.describe())
      throw Error({}, "--text", "the evaluation sequences are the calibration sequences (" + stats.meta.source +
                                    "): evaluate on held-out text");
  } else if (stats.meta.source.rfind("sampled", 0) == 0 &&
             stats.meta.seed + static_cast<std::uint64_t>(stats.meta.sequences) > options.seed &&
             options.seed + static_cast<std::uint64_t>(options.sequences) > stats.meta.seed) {
    throw Error({}, "--seed", "the evaluation sequences overlap the calibration sequences");
  }
  if (!passes::has_end_to_end_calibration(stats)) {
    calibration::ErrorProbeOptions probes;
    probes.source = calibration::SequenceSource::from_description(stats.meta.source);
    probes.threads = options.threads;
    probes.progress = options.progress;
    calibration::measure_error_probes(model, spec.search, stats, probes);
    out.notes.push_back("the stats had no end-to-end error probes: measured them on the calibration sequences");
  }
  calibration::EvalOptions eval;
  eval.sequences = options.sequences;
  eval.length = options.length;
  eval.seed = options.seed;
  eval.source = options.source;
  eval.threads = options.threads;
  std::vector<ir::Module> plans;
  for (double budget : options.budgets) {
    for (const auto& method : methods) {
      std::string why;
      auto plan = build_sweep_plan(method, spec, stats, budget, options.length, &why);
      if (!plan) {
        out.notes.push_back(method + " at " + std::to_string(budget) + ": skipped: " + why);
        if (options.progress) *options.progress << "sweep: " << out.notes.back() << "\n";
        continue;
      }
      SweepRow row;
      row.budget = budget;
      row.method = method;
      row.bytes = ir::total_bytes(*plan);
      row.predicted_error = passes::predict_plan_error(*plan, stats).total;
      out.rows.push_back(row);
      plans.push_back(std::move(*plan));
    }
  }
  if (options.progress)
    *options.progress << "sweep: measuring " << plans.size() << " plans on " << eval.sequences << " sequences\n";
  // Every plan on the same sequences in one pass per sequence (the baseline runs once).
  const std::vector<calibration::EvalReport> reports = calibration::evaluate_plans(model, plans, eval, "sweep plan");
  for (std::size_t i = 0; i < out.rows.size(); ++i) {
    SweepRow& row = out.rows[i];
    row.kl_mean = reports[i].kl_mean;
    row.top1_agreement = reports[i].top1_agreement;
    if (options.progress)
      *options.progress << "sweep: budget " << row.budget << " " << row.method << ": " << row.bytes << " bytes, KL "
                        << row.kl_mean << ", predicted " << row.predicted_error << "\n";
  }
  std::vector<double> predicted, measured;
  for (const auto& row : out.rows) {
    predicted.push_back(row.predicted_error);
    measured.push_back(row.kl_mean);
  }
  out.spearman = spearman_correlation(predicted, measured);
  return out;
}

}  // namespace kvc::sweep
