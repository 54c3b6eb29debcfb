#pragma once
// Target machine, per-isa function attributes and the O3 pipeline, shared by the
// JIT and the object emitter (internal to backends/llvm).
#include <memory>
#include <string>

#include "ir/kernel_spec.h"

namespace llvm {
class Function;
class Module;
class TargetMachine;
}  // namespace llvm

namespace kvc::llvm_backend {

void initialize_native_target();
// A target machine for the host CPU; PIC when `pic` (objects linked into PIE executables).
std::unique_ptr<llvm::TargetMachine> make_host_target_machine(bool pic);
// Sets target-cpu / target-features on every function so each kernel is compiled
// for its own isa (AVX2 and scalar kernels never use AVX-512 registers).
void set_isa_attributes(llvm::Function& f, ir::KernelIsa isa);
// The new-pass-manager O3 pipeline; vectorizers off for scalar kernels.
void optimize_module(llvm::Module& m, llvm::TargetMachine& tm, bool vectorize);

}  // namespace kvc::llvm_backend
