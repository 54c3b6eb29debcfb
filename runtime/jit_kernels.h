#pragma once
// The generated kernels of one plan for the llvm-jit backend: per layer the JIT
// attention kernel and quantize-on-append encoder, one of each per distinct spec
// (layers with equal formats share them), compiled in one batch of each kind when
// the runtime is created.
// One JIT per isa serves the whole process (kernels are cached by spec hash), so a
// runtime created for a plan whose kernels an earlier runtime compiled reuses them:
// `kvc eval` creates one runtime per sequence and compiles once. Compiled code lives
// as long as the process (bounded by the distinct specs ever compiled). No LLVM
// header is reached from here (KernelJit is a pimpl).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/kernel_abi.h"
#include "ir/kernel_spec.h"
#include "ir/plan.h"

namespace kvc::llvm_backend {
class KernelJit;
}

namespace kvc::runtime {

struct LayerKernels {
  kvc_attend_fn attend = nullptr;
  kvc_append_fn append = nullptr;
  std::string attend_name, append_name;
};

class JitKernels {
 public:
  // `int8_dot`: lower every layer that ir::supports_int8_dot allows with the
  // int8-dot option (KernelSpec::int8_dot: approximate key scores); the others,
  // and every append encoder, are unchanged.
  // Throws StatusError: KVC_ERROR_INVALID_ARGUMENT for an isa this CPU lacks,
  // KVC_ERROR_PLAN for a layer the code generator cannot handle.
  JitKernels(const ir::Module& module, ir::KernelIsa isa, bool int8_dot = false);
  ~JitKernels();
  JitKernels(const JitKernels&) = delete;
  JitKernels& operator=(const JitKernels&) = delete;

  const LayerKernels& layer(int layer) const { return layers_[static_cast<std::size_t>(layer)]; }
  // Distinct kernels this plan uses, and what compiling them cost (when they were
  // compiled, possibly for an earlier runtime).
  int attend_kernels() const { return attend_kernels_; }
  int append_kernels() const { return append_kernels_; }
  double compile_ms() const { return compile_ms_; }

 private:
  std::shared_ptr<llvm_backend::KernelJit> jit_;
  std::vector<LayerKernels> layers_;
  int attend_kernels_ = 0, append_kernels_ = 0;
  double compile_ms_ = 0;
};

}  // namespace kvc::runtime
