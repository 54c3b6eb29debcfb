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

// The CPU code is generated for: the host ("native") or a CPU LLVM knows by name
// (x86-64-v3, x86-64-v4, znver4, ...), whose features then come from LLVM's CPU
// table rather than from this machine, so an object can be built for another CPU.
struct CpuTarget {
  std::string name;  // LLVM's name of the CPU (the host's name for "native")
  bool host = true;
};
// "native" or "" -> the host; any other name must be one LLVM knows for this
// machine's target, else kvc::Error on the field target.cpu.
CpuTarget resolve_cpu(const std::string& cpu);
bool cpu_supports(const CpuTarget& cpu, ir::KernelIsa isa);
// Whether the CPU has an LLVM feature ("avx512vnni"): the host's detected features,
// or a named CPU's from LLVM's table.
bool cpu_has_feature(const CpuTarget& cpu, const std::string& feature);
// Avx512 when the CPU has avx512f/bw/vl/dq (+fma, f16c), Avx2 when it has avx2+fma+f16c, else Scalar.
ir::KernelIsa best_isa(const CpuTarget& cpu);
// Host -> best_isa(cpu); any other isa when the CPU can run it, else kvc::Error (field "isa").
ir::KernelIsa resolve_isa_for(const CpuTarget& cpu, ir::KernelIsa requested);

// A target machine for `cpu`; PIC when `pic` (objects linked into PIE executables).
std::unique_ptr<llvm::TargetMachine> make_target_machine(const CpuTarget& cpu, bool pic);
std::unique_ptr<llvm::TargetMachine> make_host_target_machine(bool pic);
// Sets target-cpu / target-features on every function so each kernel is compiled
// for its own isa (AVX2 and scalar kernels never use AVX-512 registers).
void set_isa_attributes(llvm::Function& f, ir::KernelIsa isa, const CpuTarget& cpu);
void set_isa_attributes(llvm::Function& f, ir::KernelIsa isa);  // for the host
// The new-pass-manager O3 pipeline; vectorizers off for scalar kernels.
void optimize_module(llvm::Module& m, llvm::TargetMachine& tm, bool vectorize);

}  // namespace kvc::llvm_backend
