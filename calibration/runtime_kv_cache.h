#pragma once
// RuntimeKVCache: the model's KV cache held by the runtime (runtime::Store, the
// store behind the kvc.h C API) - the paged compressed store a host links - so that
// `kvc eval --cache runtime` measures the code that ships, not only the reference
// semantics. The runtime reproduces reference::ReferenceLayerCache bit for bit, so
// for the same module this cache gives the same logits and bytes as PlanKVCache.
//
// One runtime sequence at a time: begin_sequence frees the previous one and creates
// a fresh one. end_prefill hands a layer the last `retention.window` prompt queries
// (all of them when the window is 0 or longer than the prompt), like PlanKVCache.
// A CrossLayer prefill basis is the runtime's: computed from the prompt keys of all
// layers of the group (PlanKVCache takes the first layer's), so cross-layer plans
// are not expected to match PlanKVCache.
#include <memory>

#include "ir/kernel_spec.h"
#include "ir/plan.h"
#include "kvc.h"
#include "model/kv_cache.h"

namespace kvc::runtime {
class Store;
}

namespace kvc::calibration {

// How the runtime behind the cache runs (kvc_runtime_config's fields).
struct RuntimeCacheOptions {
  int threads = 1;  // worker threads for attention across KV heads (at least 1)
  // Which kernels run: KVC_BACKEND_REFERENCE or KVC_BACKEND_LLVM_JIT (the JIT
  // kernels agree with the reference to ~1e-6 of the output norm, not bit for bit,
  // so llvm-jit logits are close to but not exactly PlanKVCache's).
  kvc_backend backend = KVC_BACKEND_REFERENCE;
  ir::KernelIsa isa = ir::KernelIsa::Host;  // llvm-jit only
  bool int8_dot = false;                    // llvm-jit only: int8-dot kernels where eligible (kvc.h)
};

class RuntimeKVCache final : public model::KVCacheInterface {
 public:
  // Throws kvc::Error when the module's model shape is not `shape`, a layer uses a
  // calibrated basis (no basis data in a plan yet), threads < 1, the backend is
  // llvm-aot (no host kernels to install here) or the runtime rejects the plan or
  // options (an isa this CPU lacks, int8_dot without llvm-jit).
  RuntimeKVCache(const ir::Module& module, const model::CacheShape& shape, const RuntimeCacheOptions& options);
  // The reference backend with `threads` attention threads.
  RuntimeKVCache(const ir::Module& module, const model::CacheShape& shape, int threads = 1);
  ~RuntimeKVCache() override;
  RuntimeKVCache(const RuntimeKVCache&) = delete;
  RuntimeKVCache& operator=(const RuntimeKVCache&) = delete;

  void begin_sequence() override;
  void append(int layer, const float* k, const float* v, int n) override;
  void attend(int layer, const float* q, float* out) override;
  void end_prefill(int layer, const float* queries, int n_queries) override;
  std::int64_t tokens(int layer) const override;
  // The runtime's bytes_live for the one live sequence (= ir::layer_bytes_per_sequence
  // summed over layers, the number PlanKVCache reports).
  std::int64_t bytes() const override;

  const runtime::Store& store() const { return *store_; }
  kvc_seq sequence() const { return sequence_; }

 private:
  void check_layer(int layer) const;
  // Ends staging of a layer that never saw end_prefill (a sequence with no prompt).
  void finish_staging(int layer);

  model::CacheShape shape_;
  std::unique_ptr<runtime::Store> store_;
  kvc_seq sequence_ = 0;  // 0 = none live
};

}  // namespace kvc::calibration
