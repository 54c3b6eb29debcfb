#include "runtime/jit_kernels.h"

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "backends/llvm/generated_formats.h"
#include "backends/llvm/isa.h"
#include "backends/llvm/kernel_jit.h"
#include "runtime/status_error.h"

namespace kvc::runtime {
namespace {

// The process's JIT for `isa`. Deliberately never destroyed: its code may be called
// until the process exits, and LLVM's own statics tear down in no defined order.
std::shared_ptr<llvm_backend::KernelJit> process_jit(ir::KernelIsa isa) {
  static std::mutex mutex;
  static auto* jits = new std::map<ir::KernelIsa, std::shared_ptr<llvm_backend::KernelJit>>();
  std::lock_guard<std::mutex> lock(mutex);
  auto& jit = (*jits)[isa];
  if (!jit) jit = std::make_shared<llvm_backend::KernelJit>(llvm_backend::JitOptions{isa});
  return jit;
}

}  // namespace

JitKernels::JitKernels(const ir::Module& module, ir::KernelIsa isa, bool int8_dot) {
  if (!llvm_backend::host_supports(isa))
    fail(KVC_ERROR_INVALID_ARGUMENT, std::string("llvm-jit: this CPU cannot run ") + ir::to_string(isa) + " kernels");
  try {
    const ir::LoweredKernels lowered = ir::lower_module(module, isa);
    for (std::size_t l = 0; l < lowered.layer_kernel.size(); ++l) {
      const std::string why =
          llvm_backend::unsupported_format(lowered.specs[static_cast<std::size_t>(lowered.layer_kernel[l])]);
      if (!why.empty()) fail(KVC_ERROR_PLAN, "llvm-jit: layer " + std::to_string(l) + ": " + why);
    }
    // The option is per spec, so layers sharing a spec stay sharing one kernel.
    // Encoders do not depend on it (they write the same blocks either way).
    std::vector<ir::KernelSpec> attend_specs = lowered.specs;
    if (int8_dot)
      for (ir::KernelSpec& s : attend_specs) s.int8_dot = ir::supports_int8_dot(s);
    jit_ = process_jit(isa);
    const auto attend = jit_->get_all(attend_specs);
    const auto append = jit_->get_all_appends(lowered.specs);
    for (int index : lowered.layer_kernel) {
      const std::size_t k = static_cast<std::size_t>(index);
      layers_.push_back({attend[k]->attend, append[k]->encode, attend[k]->name, append[k]->name});
    }
    // Distinct kernels (specs may repeat across layers; encoders may coincide
    // although their attention kernels differ).
    std::set<const void*> seen;
    for (const auto* k : attend)
      if (seen.insert(k).second) ++attend_kernels_, compile_ms_ += k->compile_ms;
    for (const auto* k : append)
      if (seen.insert(k).second) ++append_kernels_, compile_ms_ += k->compile_ms;
  } catch (const StatusError&) {
    throw;
  } catch (const Error& e) {
    fail(KVC_ERROR_PLAN, "llvm-jit: " + std::string(e.what()));
  }
}

JitKernels::~JitKernels() = default;

}  // namespace kvc::runtime
