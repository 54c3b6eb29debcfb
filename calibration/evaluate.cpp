#include "calibration/evaluate.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <ostream>
#include <vector>

#include "calibration/plan_cache.h"
#include "calibration/runtime_kv_cache.h"
#include "calibration/sequence_loop.h"
#include "calibration/token_sequences.h"
#include "model/forward.h"
#include "model/full_kv_cache.h"
#include "model/sampler.h"
#include "support/diagnostics.h"

namespace kvc::calibration {
namespace {

// log-softmax in double.
std::vector<double> log_probs(const std::vector<float>& logits) {
  double mx = -INFINITY;
  for (float x : logits) mx = std::max(mx, static_cast<double>(x));
  double z = 0;
  for (float x : logits) z += std::exp(static_cast<double>(x) - mx);
  const double lz = mx + std::log(z);
  std::vector<double> out(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - lz;
  return out;
}

// KL(p || q) from log-probabilities; exactly 0 when they are equal.
double kl_divergence(const std::vector<double>& lp, const std::vector<double>& lq) {
  double kl = 0;
  for (std::size_t i = 0; i < lp.size(); ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
  return std::max(0.0, kl);
}

struct SequenceResult {
  double kl_sum = 0, kl_max = 0, kl32_sum = 0, kl32_max = 0;
  std::int64_t positions = 0, agree = 0;
  double nll_full = 0, nll_plan = 0, nll_fp32 = 0;
  std::int64_t targets = 0;
  std::int64_t bytes_full = 0, bytes_plan = 0, bytes_fp32 = 0;
};

std::unique_ptr<model::KVCacheInterface> make_cache(const EvalOptions& o, const ir::Module& module,
                                                    const model::CacheShape& shape) {
  if (o.cache == EvalCache::Runtime)
    return std::make_unique<RuntimeKVCache>(module, shape,
                                            RuntimeCacheOptions{o.cache_threads, o.cache_backend, o.cache_isa, o.int8_dot});
  return std::make_unique<PlanKVCache>(module, shape);
}

// One sequence through the fp32 cache, the baseline cache and every plan's cache:
// the fp32 and baseline runs are shared by all plans (they do not depend on them).
std::vector<SequenceResult> run_sequence(const model::Model& model, const ir::Module& baseline,
                                         const std::vector<ir::Module>& plans, const std::vector<int>& tokens,
                                         int prompt, const EvalOptions& o) {
  const model::CacheShape shape = model::ForwardPass::cache_shape(model.config);
  model::FullKVCache fp32_cache(shape);
  const std::unique_ptr<model::KVCacheInterface> full_cache = make_cache(o, baseline, shape);
  std::vector<std::unique_ptr<model::KVCacheInterface>> plan_caches;
  std::vector<std::unique_ptr<model::ForwardPass>> planned;
  plan_caches.reserve(plans.size());
  planned.reserve(plans.size());
  model::ForwardPass fp32(model, fp32_cache), full(model, *full_cache);
  const std::vector<int> head(tokens.begin(), tokens.begin() + prompt);
  fp32.prefill(head);
  full.prefill(head);
  for (const ir::Module& plan : plans) {
    plan_caches.push_back(make_cache(o, plan, shape));
    planned.push_back(std::make_unique<model::ForwardPass>(model, *plan_caches.back()));
    planned.back()->prefill(head);
  }
  std::vector<SequenceResult> rs(plans.size());
  const int length = static_cast<int>(tokens.size());
  for (int t = prompt; t < length; ++t) {
    const std::vector<double> l32 = log_probs(fp32.forward(tokens[t], t));
    const std::vector<float>& full_logits = full.forward(tokens[t], t);
    const int full_top = model::Sampler::argmax(full_logits);
    const std::vector<double> lf = log_probs(full_logits);
    const double kl32 = kl_divergence(l32, lf);
    for (std::size_t p = 0; p < plans.size(); ++p) {
      SequenceResult& r = rs[p];
      const std::vector<float>& plan_logits = planned[p]->forward(tokens[t], t);
      const int plan_top = model::Sampler::argmax(plan_logits);
      const std::vector<double> lp = log_probs(plan_logits);
      const double kl = kl_divergence(lf, lp);
      r.kl_sum += kl;
      r.kl_max = std::max(r.kl_max, kl);
      r.kl32_sum += kl32;
      r.kl32_max = std::max(r.kl32_max, kl32);
      r.agree += full_top == plan_top;
      ++r.positions;
      if (t + 1 < length) {
        r.nll_fp32 -= l32[tokens[t + 1]];
        r.nll_full -= lf[tokens[t + 1]];
        r.nll_plan -= lp[tokens[t + 1]];
        ++r.targets;
      }
    }
  }
  for (std::size_t p = 0; p < plans.size(); ++p) {
    rs[p].bytes_fp32 = fp32_cache.bytes();
    rs[p].bytes_full = full_cache->bytes();
    rs[p].bytes_plan = plan_caches[p]->bytes();
  }
  return rs;
}

}  // namespace

EvalReport evaluate_plan(const model::Model& model, const ir::Module& plan, const EvalOptions& o,
                         const std::string& plan_origin) {
  return evaluate_plans(model, {plan}, o, plan_origin).front();
}

std::vector<EvalReport> evaluate_plans(const model::Model& model, const std::vector<ir::Module>& plans_in,
                                       const EvalOptions& o, const std::string& plan_origin) {
  const model::CacheShape shape = model::ForwardPass::cache_shape(model.config);
  if (plans_in.empty()) return {};
  for (const ir::Module& plan : plans_in) check_plan_matches_model(plan, shape, plan_origin);
  if (o.sequences <= 0) throw Error({}, "--sequences", "must be positive");
  if (o.cache_threads < 1) throw Error({}, "--cache-threads", "must be at least 1");
  if (o.length < 2) throw Error({}, "--length", "must be at least 2 tokens");
  if (model.config.context > 0 && o.length > model.config.context)
    throw Error({}, "--length",
                std::to_string(o.length) + " tokens exceed the model's context of " + std::to_string(model.config.context));
  const int prompt = o.prompt > 0 ? o.prompt : o.length / 2;
  if (prompt < 1 || prompt >= o.length) throw Error({}, "--prompt", "must lie in [1, length)");

  std::vector<ir::Module> plans = plans_in;
  for (ir::Module& plan : plans) {
    plan.workload.context = o.length;
    plan.workload.batch = 1;
    plan.workload.generate = o.length - prompt;
  }
  const ir::Module baseline = ir::make_uncompressed_module(plans.front().model, plans.front().workload, 0);

  std::vector<std::vector<int>> inputs;
  inputs = read_source_sequences(model, o.source, o.sequences, o.length);
  std::vector<std::vector<SequenceResult>> results(o.sequences);
  for_each_sequence(
      o.sequences, o.threads,
      [&](int i) {
        results[i] = run_sequence(model, baseline, plans, sequence_tokens(model, inputs, o.seed, i, o.length), prompt, o);
      },
      [&](int finished) {
        if (o.progress) *o.progress << "kvc eval: sequence " << finished << "/" << o.sequences << " done\n";
      });

  std::vector<EvalReport> reports;
  for (std::size_t p = 0; p < plans.size(); ++p) {
    EvalReport rep;
    rep.sequences = o.sequences;
    rep.length = o.length;
    rep.prompt = prompt;
    double kl = 0, kl32 = 0, nf = 0, np = 0, n32 = 0;
    std::int64_t agree = 0, targets = 0;
    for (const auto& per_plan : results) {
      const SequenceResult& r = per_plan[p];  // in sequence order: deterministic sums
      kl += r.kl_sum;
      kl32 += r.kl32_sum;
      rep.kl_max = std::max(rep.kl_max, r.kl_max);
      rep.kl_fp16_vs_fp32_max = std::max(rep.kl_fp16_vs_fp32_max, r.kl32_max);
      agree += r.agree;
      rep.positions += r.positions;
      nf += r.nll_full;
      np += r.nll_plan;
      n32 += r.nll_fp32;
      targets += r.targets;
      rep.bytes_full = std::max(rep.bytes_full, r.bytes_full);
      rep.bytes_plan = std::max(rep.bytes_plan, r.bytes_plan);
      rep.bytes_fp32 = std::max(rep.bytes_fp32, r.bytes_fp32);
    }
    const double n = static_cast<double>(rep.positions);
    rep.kl_mean = kl / n;
    rep.kl_fp16_vs_fp32 = kl32 / n;
    rep.top1_agreement = static_cast<double>(agree) / n;
    const double nt = std::max<double>(1.0, static_cast<double>(targets));
    rep.ppl_full = std::exp(nf / nt);
    rep.ppl_plan = std::exp(np / nt);
    rep.ppl_fp32 = std::exp(n32 / nt);
  reports.push_back(rep);
  }
  return reports;
}

}  // namespace kvc::calibration
