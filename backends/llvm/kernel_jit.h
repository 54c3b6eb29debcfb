#pragma once
// In-process JIT for decode-attention kernels and quantize-on-append encoders
// (ORC LLJIT, host CPU, O3).
//
// Kernels are compiled once per distinct (resolved) KernelSpec and cached by its
// hash; compile time is measured per batch of kernels. An append encoder depends
// on fewer fields (append_codegen.h: g does not matter), so layers whose attention
// kernels differ may share one encoder. LLVM stays behind the
// pimpl: including this header does not pull in any LLVM header.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/kernel_abi.h"
#include "backends/llvm/partial_abi.h"
#include "ir/kernel_spec.h"

namespace kvc::llvm_backend {

struct JitOptions {
  // Isa for specs that say Host; Host = the best this CPU supports.
  ir::KernelIsa isa = ir::KernelIsa::Host;
};

struct CompiledKernel {
  ir::KernelSpec spec;  // isa resolved
  std::string name;     // C symbol of `attend`; `partial` is name + "_partial"
  kvc_attend_fn attend = nullptr;
  kvc_attend_partial_fn partial = nullptr;
  double compile_ms = 0;  // share of the batch it was compiled in
};

// A quantize-on-append encoder (kvc_append_fn, backends/kernel_abi.h).
struct CompiledAppend {
  ir::KernelSpec spec;  // append_spec(): isa resolved, g = 1
  std::string name;     // C symbol, append_kernel_name(spec)
  kvc_append_fn encode = nullptr;
  double compile_ms = 0;  // share of the batch it was compiled in
};

struct JitStats {
  int kernels = 0;         // distinct attention kernels compiled
  int append_kernels = 0;  // distinct append encoders compiled
  int cache_hits = 0;      // get()/get_append() requests answered from the cache
  double compile_ms = 0;   // total wall time spent building, optimising and linking (both kinds)
};

class KernelJit {
 public:
  explicit KernelJit(JitOptions options = {});
  ~KernelJit();
  KernelJit(const KernelJit&) = delete;
  KernelJit& operator=(const KernelJit&) = delete;

  // The kernel for `spec`, compiled on first use. Thread-safe. Throws kvc::Error
  // for a spec that cannot be compiled or an isa this CPU lacks.
  const CompiledKernel& get(const ir::KernelSpec& spec);
  // Compiles every missing kernel of `specs` in one LLVM module (one O3 run, one
  // link), which is much faster than one get() each; returns them in order.
  std::vector<const CompiledKernel*> get_all(const std::vector<ir::KernelSpec>& specs);

  // The append encoder for the layer format `spec` describes (its g is ignored),
  // compiled on first use. Thread-safe; kvc::Error as for get().
  const CompiledAppend& get_append(const ir::KernelSpec& spec);
  // Every missing encoder of `specs` in one module; returned in order.
  std::vector<const CompiledAppend*> get_all_appends(const std::vector<ir::KernelSpec>& specs);

  JitStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvc::llvm_backend
