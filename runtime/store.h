#pragma once
// The runtime behind kvc.h: the layers' stores, the live sequences (each in one
// of workload.batch slots), cross-layer basis groups, and the thread pool that
// runs attention across KV heads and sequences. Errors are StatusError; a call
// that fails has changed nothing.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "ir/plan.h"
#include "kvc.h"
#include "ir/kernel_spec.h"
#include "runtime/jit_kernels.h"
#include "runtime/layer_store.h"
#include "support/thread_pool.h"

namespace kvc::runtime {

struct StoreOptions {
  int threads = 1;
  kvc_backend backend = KVC_BACKEND_REFERENCE;  // kvc.h "Kernels"
  ir::KernelIsa isa = ir::KernelIsa::Host;      // llvm-jit only
  bool int8_dot = false;                        // llvm-jit only: JitKernels' int8-dot lowering
  kvc_seq first_sequence_id = 1;                // ids count up from here (tests start near the wrap)
};

class Store {
 public:
  // Throws StatusError(KVC_ERROR_PLAN) for a module that cannot be stored (or,
  // with llvm-jit, compiled).
  Store(ir::Module module, const StoreOptions& options);
  // The reference backend.
  Store(ir::Module module, int threads);

  const ir::Module& module() const { return module_; }
  int threads() const { return pool_.threads(); }

  kvc_seq create_sequence();
  kvc_seq fork_sequence(kvc_seq source);
  void free_sequence(kvc_seq seq);

  void append(int layer, kvc_seq seq, const float* k, const float* v, std::int64_t n_tokens);
  void end_prefill(int layer, kvc_seq seq, const float* window, std::int64_t n_q);
  void attend(int layer, kvc_seq seq, const float* q, float* out);
  void attend_batch(int layer, const kvc_seq* seqs, int n_seqs, const float* q, float* out);

  void set_calibrated_basis(int layer, int kv_head, const float* basis);
  void set_layer_kernel(int layer, kvc_attend_fn kernel);
  void set_layer_append(int layer, kvc_append_fn encoder);

  kvc_memory_stats memory_stats() const;
  kvc_kernel_stats kernel_stats() const;
  // What `layer` runs: a generated symbol, "reference" or "host" (kvc.h). The
  // pointers stay valid as long as the Store.
  const char* attend_kernel_name(int layer) const;
  const char* append_kernel_name(int layer) const;

  // Inspection for tests.
  const LayerStore& layer_store(int layer) const;
  int slot_of(kvc_seq seq) const;

 private:
  struct Sequence {
    int slot = 0;
    std::mutex mutex;    // one call on this sequence at a time
    bool freed = false;  // under `mutex`: its slot may already belong to another sequence
  };
  std::shared_ptr<Sequence> find(kvc_seq seq) const;
  // Locks a sequence find() returned. A free may have run between the two (the
  // caller looked it up, then waited for the lock while another thread freed
  // it): then the call fails as for an unknown sequence, and never touches the
  // slot, which may already hold the next sequence created.
  static std::unique_lock<std::mutex> lock_live(Sequence& s, kvc_seq seq);
  // The next free id (under mutex_).
  kvc_seq take_id();
  LayerStore& layer_at(int layer) const;
  void check_query(const float* q, const float* out) const;
  // The attention kernel `layer` runs when the host has installed none.
  void install_own_kernel(int layer);

  ir::Module module_;
  std::vector<std::unique_ptr<LayerStore>> layers_;
  std::vector<std::vector<int>> basis_group_;  // per layer: the layers sharing its basis, in order
  mutable std::mutex mutex_;                   // sequences_ and free_slots_
  std::map<kvc_seq, std::shared_ptr<Sequence>> sequences_;
  std::vector<int> free_slots_;
  kvc_seq next_id_ = 1;
  kvc_backend backend_ = KVC_BACKEND_REFERENCE;
  std::unique_ptr<JitKernels> jit_;      // llvm-jit only
  std::vector<char> host_kernel_;        // per layer: runs a kernel set with set_layer_kernel (under mutex_)
  std::vector<char> host_append_;        // per layer: runs an encoder set with set_layer_append (under mutex_)
  kvc::ThreadPool pool_;
};

}  // namespace kvc::runtime
