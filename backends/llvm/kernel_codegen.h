#pragma once
// Builds the LLVM IR of one decode-attention kernel spec (internal to
// backends/llvm: only its .cpp files include this header).
//
// Two functions per spec: `kernel_name(spec)` with the kvc_attend_fn signature
// and `kernel_name(spec) + "_partial"` with the kvc_attend_partial_fn signature.
#include <memory>

#include "ir/kernel_spec.h"

namespace llvm {
class LLVMContext;
class Module;
}  // namespace llvm

namespace kvc::llvm_backend {

// `spec.isa` must already be resolved (not Host): it sets the vector width.
// `vnni`: whether the CPU the code is for has AVX-512 VNNI; int8-dot AVX-512 kernels
// then use vpdpbusd, else they write the same integer sums in plain IR (identical
// results). Adds both functions to `module`.
void add_kernel_functions(llvm::Module& module, const ir::KernelSpec& spec, bool vnni);

}  // namespace kvc::llvm_backend
