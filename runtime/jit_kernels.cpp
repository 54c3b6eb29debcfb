#include "runtime/jit_kernels.h"

#include <string>

#include "backends/llvm/isa.h"
#include "backends/llvm/kernel_jit.h"
#include "runtime/status_error.h"

namespace kvc::runtime {

JitKernels::JitKernels(const ir::Module& module, ir::KernelIsa isa, bool int8_dot) {
  if (!llvm_backend::host_supports(isa))
    fail(KVC_ERROR_INVALID_ARGUMENT, std::string("llvm-jit: this CPU cannot run ") + ir::to_string(isa) + " kernels");
  try {
    const ir::LoweredKernels lowered = ir::lower_module(module, isa);
    // The option is per spec, so layers sharing a spec stay sharing one kernel.
    // Encoders do not depend on it (they write the same blocks either way).
    std::vector<ir::KernelSpec> attend_specs = lowered.specs;
    if (int8_dot)
      for (ir::KernelSpec& s : attend_specs) s.int8_dot = ir::supports_int8_dot(s);
    jit_ = std::make_unique<llvm_backend::KernelJit>(llvm_backend::JitOptions{isa});
    const auto attend = jit_->get_all(attend_specs);
    const auto append = jit_->get_all_appends(lowered.specs);
    for (int index : lowered.layer_kernel) {
      const std::size_t k = static_cast<std::size_t>(index);
      layers_.push_back({attend[k]->attend, append[k]->encode, attend[k]->name, append[k]->name});
    }
    const llvm_backend::JitStats stats = jit_->stats();
    attend_kernels_ = stats.kernels;
    append_kernels_ = stats.append_kernels;
    compile_ms_ = stats.compile_ms;
  } catch (const StatusError&) {
    throw;
  } catch (const Error& e) {
    fail(KVC_ERROR_PLAN, "llvm-jit: " + std::string(e.what()));
  }
}

JitKernels::~JitKernels() = default;

}  // namespace kvc::runtime
