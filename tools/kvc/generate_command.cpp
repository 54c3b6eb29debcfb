// `kvc generate --model M [--plan P | --spec S] --prompt TEXT`: text written by the
// model through a plan's compressed cache, held by the runtime and run by its
// kernels as a host would run them; --compare also writes with the fp16 cache.
#include <chrono>
#include <iostream>
#include <string>

#include "calibration/calibrate.h"
#include "calibration/plan_cache.h"
#include "calibration/runtime_kv_cache.h"
#include "ir/kernel_spec.h"
#include "ir/layout.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "model_commands.h"
#include "plan_source.h"
#include "support/diagnostics.h"

namespace kvc::cli {
namespace {

struct GenerateOptions {
  std::string model, plan, spec, tokenizer;
  std::string prompt;
  int tokens = 128;
  float temperature = 0.0f;
  std::uint64_t seed = 0;
  bool compare = false;
  std::string backend = "llvm-jit";
  std::string isa = "host";
  int threads = 1;
};

struct Continuation {
  std::vector<int> tokens;  // generated, without the prompt
  std::int64_t cache_bytes = 0;
  double prefill_s = 0, decode_s = 0;
  int decode_steps = 0;
  bool ended = false;  // stopped at BOS/EOS before the token count
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// One generation; each token's text is written to `out` as it is chosen. The first
// token that differs from `other` (when given) is preceded by a marker.
Continuation generate(const model::Model& m, const ir::Module& plan, const std::vector<int>& prompt,
                      const GenerateOptions& o, const model::Tokenizer& tok, std::ostream& out,
                      const std::vector<int>* other) {
  calibration::RuntimeCacheOptions cache_options;
  cache_options.threads = o.threads;
  cache_options.backend = o.backend == "llvm-jit" ? KVC_BACKEND_LLVM_JIT : KVC_BACKEND_REFERENCE;
  cache_options.isa = ir::parse_kernel_isa(o.isa);
  calibration::RuntimeKVCache cache(plan, model::ForwardPass::cache_shape(m.config), cache_options);
  model::ForwardPass fp(m, cache);
  model::Sampler sampler(o.temperature, o.seed);
  Continuation c;
  auto start = std::chrono::steady_clock::now();
  const std::vector<float> all = fp.prefill(prompt);
  std::vector<float> logits(all.end() - m.config.vocab, all.end());
  c.prefill_s = seconds_since(start);
  start = std::chrono::steady_clock::now();
  bool marked = false;
  for (int i = 0; i < o.tokens; ++i) {
    const int next = sampler.sample(logits);
    if (next == tok.bos() || next == tok.eos()) {
      c.ended = true;
      break;
    }
    if (other && !marked && (i >= static_cast<int>(other->size()) || (*other)[i] != next)) {
      out << "[>>]";
      marked = true;
    }
    c.tokens.push_back(next);
    out << tok.piece(next) << std::flush;
    if (i + 1 == o.tokens) break;
    logits = fp.forward(next, static_cast<int>(prompt.size()) + i);
    ++c.decode_steps;
  }
  c.decode_s = seconds_since(start);
  c.cache_bytes = cache.bytes();
  out << "\n" << std::flush;
  return c;
}

void report(const char* what, const Continuation& c, std::size_t prompt_tokens) {
  std::cerr << "kvc generate: " << what << ": " << c.tokens.size() << " tokens"
            << (c.ended ? " (stopped at end of text)" : "") << ", prompt " << prompt_tokens << " tokens in "
            << c.prefill_s << " s, decode " << (c.decode_s > 0 ? c.decode_steps / c.decode_s : 0.0)
            << " tokens/s; cache " << c.cache_bytes << " bytes\n";
}

int run(GenerateOptions& o) {
  const model::Model m = model::Model::load(o.model);
  const model::Tokenizer tok = model::Tokenizer::for_model(o.model, m.config.vocab, o.tokenizer);
  const std::vector<int> prompt = tok.encode(o.prompt, true);
  const std::int64_t context = static_cast<std::int64_t>(prompt.size()) + o.tokens;
  if (m.config.context > 0 && context > m.config.context)
    throw Error({}, "-n", "the prompt's " + std::to_string(prompt.size()) + " tokens and " + std::to_string(o.tokens) +
                              " more exceed the model's context of " + std::to_string(m.config.context));
  // No plan: the uncompressed fp16 cache, the baseline every plan is compared with.
  ir::Module plan = o.plan.empty() && o.spec.empty()
                        ? ir::make_uncompressed_module(calibration::model_shape(m), ir::Workload{}, 0)
                        : load_plan_or_spec(o.plan, o.spec);
  calibration::check_plan_matches_model(plan, model::ForwardPass::cache_shape(m.config),
                                        o.plan.empty() ? (o.spec.empty() ? "the fp16 cache" : o.spec) : o.plan);
  plan.workload.context = context;
  plan.workload.batch = 1;
  plan.workload.generate = o.tokens;
  const std::string plan_name = o.plan.empty() && o.spec.empty() ? "fp16 cache" : "plan cache";
  std::cerr << "kvc generate: " << m.name << ", " << prompt.size() << " prompt tokens, " << o.backend << " kernels"
            << (o.temperature == 0.0f ? ", greedy" : ", temperature " + std::to_string(o.temperature)) << "\n";
  if (!o.compare) {
    const Continuation c = generate(m, plan, prompt, o, tok, std::cout, nullptr);
    report(plan_name.c_str(), c, prompt.size());
    return 0;
  }
  ir::Module full = ir::make_uncompressed_module(plan.model, plan.workload, 0);
  std::cout << "--- fp16 cache ---\n" << o.prompt;
  const Continuation base = generate(m, full, prompt, o, tok, std::cout, nullptr);
  std::cout << "--- " << plan_name << " ---\n" << o.prompt;
  const Continuation mine = generate(m, plan, prompt, o, tok, std::cout, &base.tokens);
  std::size_t same = 0;
  while (same < base.tokens.size() && same < mine.tokens.size() && base.tokens[same] == mine.tokens[same]) ++same;
  if (same == base.tokens.size() && same == mine.tokens.size())
    std::cout << "--- identical: all " << same << " generated tokens agree\n";
  else
    std::cout << "--- first divergence at generated token " << same << " (marked [>>]): fp16 \""
              << (same < base.tokens.size() ? tok.piece(base.tokens[same]) : "<end>") << "\", plan \""
              << (same < mine.tokens.size() ? tok.piece(mine.tokens[same]) : "<end>") << "\"\n";
  report("fp16 cache", base, prompt.size());
  report(plan_name.c_str(), mine, prompt.size());
  std::cerr << "kvc generate: the plan's cache is " << static_cast<double>(base.cache_bytes) / mine.cache_bytes
            << "x smaller than fp16\n";
  return 0;
}

}  // namespace

CommandRunner add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Write text with a model whose KV cache is a plan's (held by the runtime, run by its kernels): the prompt is "
      "one prefill, then -n tokens are decoded one at a time and streamed to stdout; speed and cache bytes go to "
      "stderr");
  cmd->add_option("--model", o->model, "llama2.c checkpoint or GGUF file")->required()->check(CLI::ExistingFile);
  auto* plan = cmd->add_option("--plan", o->plan, "A plan in IR text (kvc compile -o DIR writes DIR/plan.kvc)");
  auto* spec = cmd->add_option("--spec", o->spec, "A YAML spec, compiled with its (or the default) pipeline");
  plan->excludes(spec);
  spec->excludes(plan);
  cmd->add_option("--prompt", o->prompt, "The text to continue (\"\" starts from BOS alone)")->required();
  cmd->add_option("-n,--tokens", o->tokens, "Tokens to generate (fewer when the model ends the text)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temperature", o->temperature, "0 = greedy; else sample from softmax(logits / T)")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--compare", o->compare,
                "Also generate with the uncompressed fp16 cache; print both continuations, the plan's first "
                "differing token marked [>>]");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "A llama2.c tokenizer file (default: the GGUF's vocabulary, else tok<vocab>.bin or tokenizer.bin "
                  "beside the model)");
  cmd->add_option("--backend", o->backend, "The runtime's kernels: llvm-jit or reference")
      ->check(CLI::IsMember({"reference", "llvm-jit"}))
      ->capture_default_str();
  cmd->add_option("--isa", o->isa, "With --backend llvm-jit: host, scalar, avx2 or avx512")
      ->check(CLI::IsMember({"host", "scalar", "avx2", "avx512"}))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "The runtime's attention threads")->capture_default_str()->check(CLI::Range(1, 256));
  return [o] { return run(*o); };
}

}  // namespace kvc::cli
