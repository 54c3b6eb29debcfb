#pragma once
// Which cache formats the LLVM backend generates kernels for: KIVI's min/scale codes
// of unrotated vectors (and fp16). Rotated formats and the Symmetric and Lloyd-Max
// quantizers are defined by the reference kernels only (backends/reference/) until
// generated kernels for them exist and are tested against those; until then the
// backend refuses them rather than read their blocks as something else.
#include <string>

#include "ir/kernel_spec.h"

namespace kvc::llvm_backend {

// "" when the backend generates this spec's formats, else why not (names the format).
std::string unsupported_format(const ir::KernelSpec& spec);
// Throws kvc::Error with that reason; every generator entry point calls it.
void require_generated_formats(const ir::KernelSpec& spec);

}  // namespace kvc::llvm_backend
