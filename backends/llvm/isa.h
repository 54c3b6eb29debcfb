#pragma once
// Which instruction sets this machine can run generated kernels with.
#include "ir/kernel_spec.h"

namespace kvc::llvm_backend {

// The best of Avx512 > Avx2 > Scalar the host CPU supports (LLVM's host feature
// detection: avx512f+bw+vl+dq for Avx512, avx2+fma+f16c for Avx2).
ir::KernelIsa host_isa();
bool host_supports(ir::KernelIsa isa);
// Host -> host_isa(); any other isa is returned when the host can run it, else kvc::Error.
ir::KernelIsa resolve_isa(ir::KernelIsa requested);
// Vector lanes of fp32 the kernels use for an isa (16, 8, 1).
int isa_lanes(ir::KernelIsa isa);

}  // namespace kvc::llvm_backend
