#include "backends/llvm/codegen_loops.h"

#include <vector>

#include <llvm/IR/BasicBlock.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/Metadata.h>

namespace kvc::llvm_backend {

int largest_pow2_lanes(int limit, int must_divide) {
  int w = 1;
  while (w * 2 <= limit && must_divide % (w * 2) == 0) w *= 2;
  return w;
}

llvm::MDNode* generated_loop_metadata(llvm::LLVMContext& ctx, int unroll) {
  auto* md_false = llvm::ConstantAsMetadata::get(llvm::ConstantInt::getFalse(ctx));
  std::vector<llvm::Metadata*> ops{nullptr};  // operand 0: the node itself (a distinct loop id)
  ops.push_back(llvm::MDNode::get(ctx, {llvm::MDString::get(ctx, "llvm.loop.vectorize.enable"), md_false}));
  if (unroll <= 1) {
    ops.push_back(llvm::MDNode::get(ctx, {llvm::MDString::get(ctx, "llvm.loop.unroll.disable")}));
  } else {
    auto* count = llvm::ConstantInt::get(llvm::Type::getInt32Ty(ctx), static_cast<std::uint64_t>(unroll));
    ops.push_back(llvm::MDNode::get(
        ctx, {llvm::MDString::get(ctx, "llvm.loop.unroll.count"), llvm::ConstantAsMetadata::get(count)}));
  }
  llvm::MDNode* node = llvm::MDNode::getDistinct(ctx, ops);
  node->replaceOperandWith(0, node);
  return node;
}

void emit_loop(llvm::IRBuilder<>& b, llvm::Value* begin, llvm::Value* end, std::int64_t step,
               const std::function<void(llvm::Value* iv)>& body, int unroll) {
  llvm::LLVMContext& ctx = b.getContext();
  llvm::Function* f = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* head = llvm::BasicBlock::Create(ctx, "loop", f);
  llvm::BasicBlock* inner = llvm::BasicBlock::Create(ctx, "body", f);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx, "exit", f);
  b.CreateBr(head);
  b.SetInsertPoint(head);
  llvm::PHINode* iv = b.CreatePHI(b.getInt64Ty(), 2);
  iv->addIncoming(begin, pre);
  b.CreateCondBr(b.CreateICmpSLT(iv, end), inner, exit);
  b.SetInsertPoint(inner);
  body(iv);
  iv->addIncoming(b.CreateAdd(iv, b.getInt64(static_cast<std::uint64_t>(step))), b.GetInsertBlock());
  b.CreateBr(head)->setMetadata(llvm::LLVMContext::MD_loop, generated_loop_metadata(ctx, unroll));
  b.SetInsertPoint(exit);
}

}  // namespace kvc::llvm_backend
