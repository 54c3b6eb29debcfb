#pragma once
// `kvc eval`: how much a plan's compressed cache changes the model's predictions.
//
// Each sequence (sampled like calibration sequences, or from a token file) runs
// three times through the model: with the exact fp32 cache (model::FullKVCache),
// with the BASELINE ("full") cache - the plan cache of an uncompressed plan (K and V
// fp16, every token kept), which stores what an uncompressed fp16 cache stores - and
// with the plan's cache. The first `prompt` tokens are one prefill (where SnapKV/CAKE
// select); each later token t = prompt .. length-1 is decoded one at a time,
// teacher-forced, and its next-token distribution compared:
//   kl        KL(baseline || plan) in nats, mean and max over decoded positions
//   top1      share of positions where both argmax agree
//   ppl       exp(-mean log p(token t+1)) over t = prompt .. length-2, per cache
//   bytes     the caches' bytes() after the sequence (plan caches allocate their
//             capacity for `length` tokens up front; see ir/layout.h)
// The baseline shares the plan cache's storage path, so a plan that stores fp16 and
// keeps everything gives bit-identical logits and KL exactly 0. What fp16 storage
// itself costs is reported separately as KL(fp32 || baseline) (kl_fp16_vs_fp32).
// Sequences run in parallel and are combined in order: same inputs, same numbers.
// The baseline and plan caches are both PlanKVCache (reference kernels) or both
// RuntimeKVCache (the runtime's store, what a host links): EvalOptions::cache. The
// runtime reproduces the reference bit for bit, so both give the same report (both
// compute a cross-layer prefill basis from the keys of every layer of its group).
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "ir/kernel_spec.h"
#include "ir/plan.h"
#include "kvc.h"
#include "calibration/token_sequences.h"
#include "model/model.h"

namespace kvc::calibration {

// Which implementation stores the baseline and plan caches.
enum class EvalCache { Reference, Runtime };

struct EvalOptions {
  int sequences = 4;
  int length = 256;
  int prompt = 0;              // 0 = length / 2
  std::uint64_t seed = 0;
  SequenceSource source;       // sampled unless it names a file
  int threads = 0;             // 0 = hardware concurrency
  EvalCache cache = EvalCache::Reference;
  int cache_threads = 1;       // EvalCache::Runtime: the runtime's attention threads per cache
  // EvalCache::Runtime: which kernels the runtime runs (KVC_BACKEND_REFERENCE or
  // KVC_BACKEND_LLVM_JIT), their isa and the int8-dot option (RuntimeCacheOptions).
  // Baseline and plan caches both use them; the fp16 baseline has no int8-dot layers.
  kvc_backend cache_backend = KVC_BACKEND_REFERENCE;
  ir::KernelIsa cache_isa = ir::KernelIsa::Host;
  bool int8_dot = false;
  std::ostream* progress = nullptr;
};

struct EvalReport {
  int sequences = 0, length = 0, prompt = 0;
  std::int64_t positions = 0;  // decoded positions compared, over all sequences
  double kl_mean = 0, kl_max = 0;
  double top1_agreement = 0;
  double ppl_full = 0, ppl_plan = 0, ppl_fp32 = 0;
  std::int64_t bytes_full = 0, bytes_plan = 0, bytes_fp32 = 0;
  double kl_fp16_vs_fp32 = 0, kl_fp16_vs_fp32_max = 0;
};

// `plan` is used with its workload.context set to `length`; its model shape must
// match the model (kvc::Error naming `plan_origin` otherwise).
EvalReport evaluate_plan(const model::Model& model, const ir::Module& plan, const EvalOptions& options,
                         const std::string& plan_origin = "<plan>");

// Several plans on the same sequences: the same reports as evaluate_plan gives each
// (every computation is the same), with the fp32 and baseline runs shared, so N
// plans cost N + 2 forward passes per sequence instead of 3N (`kvc sweep`, and the
// end-to-end error probes of calibration/error_probes.h).
std::vector<EvalReport> evaluate_plans(const model::Model& model, const std::vector<ir::Module>& plans,
                                       const EvalOptions& options, const std::string& plan_origin = "<plan>");

}  // namespace kvc::calibration
