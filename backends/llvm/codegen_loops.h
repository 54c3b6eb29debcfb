#pragma once
// Control flow shared by the kernel and append code generators (internal to
// backends/llvm: only its .cpp files include this header).
#include <cstdint>
#include <functional>

#include <llvm/IR/IRBuilder.h>

namespace kvc::llvm_backend {

// The widest power-of-two vector of at most `limit` lanes whose lane count
// divides `must_divide` (1 when none larger does).
int largest_pow2_lanes(int limit, int must_divide);

// Loop metadata for generated loops. Their code is vectorised by construction,
// so the loop vectoriser stays off; `unroll` copies (1: no unrolling), because
// full unrolling of constant trip counts would multiply compile time for little speed.
llvm::MDNode* generated_loop_metadata(llvm::LLVMContext& ctx, int unroll);

// for (iv = begin; iv < end; iv += step) body(iv), with an i64 induction
// variable, emitted at b's insert point; b is left at the loop's exit block. The
// back edge carries generated_loop_metadata(unroll).
void emit_loop(llvm::IRBuilder<>& b, llvm::Value* begin, llvm::Value* end, std::int64_t step,
               const std::function<void(llvm::Value* iv)>& body, int unroll = 1);

}  // namespace kvc::llvm_backend
