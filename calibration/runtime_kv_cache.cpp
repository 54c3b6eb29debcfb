#include "calibration/runtime_kv_cache.h"

#include <algorithm>
#include <string>

#include "calibration/plan_cache.h"
#include "ir/layout.h"
#include "runtime/store.h"
#include "support/diagnostics.h"

namespace kvc::calibration {

RuntimeKVCache::RuntimeKVCache(const ir::Module& module, const model::CacheShape& shape, int threads)
    : RuntimeKVCache(module, shape, RuntimeCacheOptions{threads}) {}

RuntimeKVCache::RuntimeKVCache(const ir::Module& module, const model::CacheShape& shape,
                               const RuntimeCacheOptions& options)
    : shape_(shape) {
  check_plan_matches_model(module, shape, "<plan>");
  if (options.threads < 1)
    throw Error("runtime cache: threads must be at least 1, got " + std::to_string(options.threads));
  // llvm-aot runs the reference kernels until a host installs its linked ones,
  // so an evaluation "with llvm-aot" would silently measure the reference.
  if (options.backend != KVC_BACKEND_REFERENCE && options.backend != KVC_BACKEND_LLVM_JIT)
    throw Error("runtime cache: backend " +
                (options.backend == KVC_BACKEND_LLVM_AOT ? std::string("llvm-aot")
                                                         : std::to_string(static_cast<int>(options.backend))) +
                " cannot run here (use reference or llvm-jit)");
  // The runtime would accept such a plan and wait for kvc_set_calibrated_basis; a
  // plan carries no basis data yet, so say so up front (as PlanKVCache does).
  for (const ir::LayerPlan& p : module.layers)
    if (p.lowrank.rank > 0 && p.lowrank.source == ir::BasisSource::Calibrated)
      throw Error({}, "layer " + std::to_string(p.index) + ": lowrank",
                  "plans with calibrated bases carry no basis data yet; the evaluation cache cannot run them");
  runtime::StoreOptions store_options;
  store_options.threads = options.threads;
  store_options.backend = options.backend;
  store_options.isa = options.isa;
  store_options.int8_dot = options.int8_dot;
  store_ = std::make_unique<runtime::Store>(module, store_options);  // StatusError is a kvc::Error
  begin_sequence();
}

RuntimeKVCache::~RuntimeKVCache() = default;

void RuntimeKVCache::begin_sequence() {
  if (sequence_ != 0) {
    store_->free_sequence(sequence_);
    sequence_ = 0;
  }
  sequence_ = store_->create_sequence();
}

void RuntimeKVCache::check_layer(int layer) const {
  if (layer < 0 || layer >= shape_.layers)
    throw Error("runtime cache: layer " + std::to_string(layer) + " out of range");
}

void RuntimeKVCache::append(int layer, const float* k, const float* v, int n) {
  check_layer(layer);
  store_->append(layer, sequence_, k, v, n);
}

void RuntimeKVCache::end_prefill(int layer, const float* queries, int n_queries) {
  check_layer(layer);
  if (n_queries < 0) throw Error("runtime cache: negative prompt query count " + std::to_string(n_queries));
  const ir::LayerPlan& plan = store_->module().layers[static_cast<std::size_t>(layer)];
  const int window = plan.retention.window > 0 ? std::min(plan.retention.window, n_queries) : n_queries;
  const std::size_t row = static_cast<std::size_t>(shape_.q_dim());
  const float* last = queries ? queries + static_cast<std::size_t>(n_queries - window) * row : nullptr;
  store_->end_prefill(layer, sequence_, last, window);
}

void RuntimeKVCache::finish_staging(int layer) {
  const runtime::LayerStore& l = store_->layer_store(layer);
  const int slot = store_->slot_of(sequence_);
  if (l.staging(slot) && !l.waiting_for_group(slot)) store_->end_prefill(layer, sequence_, nullptr, 0);
}

void RuntimeKVCache::attend(int layer, const float* q, float* out) {
  check_layer(layer);
  finish_staging(layer);
  store_->attend(layer, sequence_, q, out);
}

std::int64_t RuntimeKVCache::tokens(int layer) const {
  check_layer(layer);
  const runtime::LayerStore& l = store_->layer_store(layer);
  const int slot = store_->slot_of(sequence_);
  return l.held_blocks(slot, 0) * ir::token_block(l.plan()) + l.tail_tokens(slot);
}

std::int64_t RuntimeKVCache::bytes() const { return store_->memory_stats().bytes_live; }

}  // namespace kvc::calibration
