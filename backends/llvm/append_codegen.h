#pragma once
// Builds the LLVM IR of one quantize-on-append encoder (internal to backends/llvm:
// only its .cpp files include this header).
//
// The encoder writes one main block of one KV head (ir/layout.h "Main block
// layout") from B fp32 tokens, byte for byte what reference::encode_block writes:
// the same min/max (the first element attaining it, so the sign of a zero minimum
// agrees), the same fp32 arithmetic for the scale (no fused multiply-add, a real
// division), the same fp16 rounding (to nearest even) and the same bit stream.
// It is specialised on the key and value formats, head_dim, the token block and
// the dims keys are stored at; the query group size g does not change it.
#include <string>

#include "ir/kernel_spec.h"

namespace llvm {
class Module;
}  // namespace llvm

namespace kvc::llvm_backend {

// The spec an encoder is compiled and cached under: g = 1 (irrelevant to the
// encoder), 16-bit formats canonicalised as ir::lower_layer does, isa kept.
ir::KernelSpec append_spec(ir::KernelSpec spec);

// The C symbol of the encoder, e.g. "kvc_append_k4pc32_v2pt32_d128_avx512";
// low-rank keys add "_r<rank>". Like ir::kernel_name, the isa part is the one given.
std::string append_kernel_name(const ir::KernelSpec& spec);

// Adds the encoder function (kvc_append_fn, backends/kernel_abi.h) for `spec` to
// `module`. `spec.isa` must be resolved (not Host): it sets the vector width.
void add_append_function(llvm::Module& module, const ir::KernelSpec& spec);

}  // namespace kvc::llvm_backend
