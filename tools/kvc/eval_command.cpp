// `kvc eval --model M --plan P|--spec S`: KL, top-1 agreement, perplexity and bytes
// of a plan's cache against the uncompressed cache (calibration/evaluate.h).
#include <iostream>
#include <string>
#include <nlohmann/json.hpp>

#include "calibration/evaluate.h"
#include "calibration_commands.h"
#include "sequence_source_options.h"
#include "ir/kernel_spec.h"
#include "model/model.h"
#include "plan_source.h"
#include "support/diagnostics.h"

namespace kvc::cli {
namespace {

struct EvalCommandOptions {
  std::string model;
  std::string plan;
  std::string spec;
  bool json = false;
  std::string cache = "reference";  // --cache, checked by CLI11 to be reference or runtime
  std::string backend = "reference";  // --backend (--cache runtime): reference or llvm-jit
  std::string isa = "host";           // --isa (llvm-jit)
  calibration::EvalOptions run;
};

int eval(EvalCommandOptions& o) {
  const model::Model m = model::Model::load(o.model);
  const std::string origin = o.plan.empty() ? o.spec : o.plan;
  const ir::Module plan = load_plan_or_spec(o.plan, o.spec);
  o.run.progress = &std::cerr;
  o.run.cache = o.cache == "runtime" ? calibration::EvalCache::Runtime : calibration::EvalCache::Reference;
  o.run.cache_backend = o.backend == "llvm-jit" ? KVC_BACKEND_LLVM_JIT : KVC_BACKEND_REFERENCE;
  o.run.cache_isa = ir::parse_kernel_isa(o.isa);
  if (o.run.int8_dot) {
    // The option changes only layers whose key or value format allows it: say when that is none.
    int eligible = 0;
    for (int l = 0; l < static_cast<int>(plan.layers.size()); ++l)
      eligible += ir::supports_int8_dot(ir::lower_layer(plan, l)) ? 1 : 0;
    std::cerr << "int8-dot: " << eligible << " of " << plan.layers.size()
              << " layers have 8/4/2-bit keys or values that run as int8 dot products\n";
  }
  const calibration::EvalReport r = calibration::evaluate_plan(m, plan, o.run, origin);
  if (o.json) {
    nlohmann::json j{{"model", o.model},
                     {"plan", origin},
                     {"cache", o.cache},
                     {"backend", o.backend},
                     {"int8_dot", o.run.int8_dot},
                     {"sequences", r.sequences},
                     {"length", r.length},
                     {"prompt", r.prompt},
                     {"seed", o.run.seed},
                     {"positions", r.positions},
                     {"kl_mean", r.kl_mean},
                     {"kl_max", r.kl_max},
                     {"top1_agreement", r.top1_agreement},
                     {"ppl_full", r.ppl_full},
                     {"ppl_plan", r.ppl_plan},
                     {"ppl_fp32", r.ppl_fp32},
                     {"bytes_full", r.bytes_full},
                     {"bytes_plan", r.bytes_plan},
                     {"bytes_fp32", r.bytes_fp32},
                     {"kl_fp16_vs_fp32", r.kl_fp16_vs_fp32},
                     {"kl_fp16_vs_fp32_max", r.kl_fp16_vs_fp32_max}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "plan " << origin << " on " << o.model << ": " << r.sequences << " sequences x " << r.length
            << " tokens (prompt " << r.prompt << ", " << r.positions << " decoded positions compared; "
            << o.cache << " cache"
            << (o.cache == "runtime" ? ", " + o.backend + " kernels" + (o.run.int8_dot ? ", int8-dot" : "") : "")
            << ")\n";
  std::cout << "  KL(full || plan)     mean " << r.kl_mean << "  max " << r.kl_max << "\n";
  std::cout << "  top-1 agreement      " << r.top1_agreement << "\n";
  std::cout << "  perplexity           full " << r.ppl_full << "  plan " << r.ppl_plan << "  (fp32 " << r.ppl_fp32
            << ")\n";
  std::cout << "  cache bytes/sequence full " << r.bytes_full << "  plan " << r.bytes_plan << "  ("
            << (r.bytes_plan > 0 ? static_cast<double>(r.bytes_full) / static_cast<double>(r.bytes_plan) : 0.0)
            << "x smaller; fp32 " << r.bytes_fp32 << ")\n";
  std::cout << "  KL(fp32 || full fp16) mean " << r.kl_fp16_vs_fp32 << "  max " << r.kl_fp16_vs_fp32_max
            << "  (what storing fp16 costs; 'full' is the fp16 cache)\n";
  return 0;
}

}  // namespace

CommandRunner add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Run a model with the uncompressed (fp16) cache and with a plan's cache on the same sequences; report the KL "
      "divergence of next-token distributions, top-1 agreement, perplexity and cache bytes");
  cmd->add_option("--model", o->model, "llama2.c checkpoint or GGUF file")->required();
  auto* plan = cmd->add_option("--plan", o->plan, "A plan in IR text (kvc compile -o DIR writes DIR/plan.kvc)");
  auto* spec = cmd->add_option("--spec", o->spec, "A YAML spec, compiled with its (or the default) pipeline");
  plan->excludes(spec);
  spec->excludes(plan);
  cmd->add_option("--sequences", o->run.sequences, "Evaluation sequences")->capture_default_str();
  cmd->add_option("--length", o->run.length, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--prompt", o->run.prompt, "Prompt tokens, appended as one prefill (default length/2)");
  cmd->add_option("--seed", o->run.seed, "Sequence i is sampled (temperature 1) with seed + i")->capture_default_str();
  add_sequence_source_options(cmd, o->run.source, "", "evaluation sequences");
  cmd->add_option("--threads", o->run.threads, "Worker threads, one sequence each at a time (default: all cores)");
  cmd->add_option("--cache", o->cache,
                  "What stores the baseline and plan caches: 'reference' (the reference kernels, PlanKVCache) or "
                  "'runtime' (the runtime's paged store behind kvc.h, what a host links); both give the same "
                  "numbers (tests/calibration/runtime_cache_test.cpp)")
      ->check(CLI::IsMember({"reference", "runtime"}))
      ->capture_default_str();
  cmd->add_option("--cache-threads", o->run.cache_threads,
                  "With --cache runtime: the runtime's threads for attention across KV heads, per cache")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--backend", o->backend,
                  "With --cache runtime: the runtime's kernels, 'reference' or 'llvm-jit' (generated, agree with the "
                  "reference to ~1e-6 of the attention output norm)")
      ->check(CLI::IsMember({"reference", "llvm-jit"}))
      ->capture_default_str();
  cmd->add_option("--isa", o->isa, "With --backend llvm-jit: host, scalar, avx2 or avx512")
      ->check(CLI::IsMember({"host", "scalar", "avx2", "avx512"}))
      ->capture_default_str();
  cmd->add_flag("--int8-dot", o->run.int8_dot,
                "With --backend llvm-jit: layers with 8/4/2-bit keys (per channel) or values (per token) run them "
                "as int8 dot products (ir::KernelSpec::int8_dot); the KL then includes what that approximation costs");
  cmd->add_flag("--json", o->json,
                "Print one JSON object: kl_mean, kl_max, top1_agreement, ppl_full, ppl_plan, ppl_fp32, bytes_full, "
                "bytes_plan, bytes_fp32, kl_fp16_vs_fp32, ...");
  cmd->callback([o] {
    if (o->plan.empty() == o->spec.empty()) throw CLI::ValidationError("kvc eval", "give exactly one of --plan or --spec");
    if (o->backend != "reference" && o->cache != "runtime")
      throw CLI::ValidationError("kvc eval", "--backend " + o->backend + " needs --cache runtime");
    if ((o->run.int8_dot || o->isa != "host") && o->backend != "llvm-jit")
      throw CLI::ValidationError("kvc eval", "--int8-dot and --isa need --cache runtime --backend llvm-jit");
  });
  return [o] { return eval(*o); };
}

}  // namespace kvc::cli
