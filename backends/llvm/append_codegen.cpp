#include "backends/llvm/append_codegen.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <llvm/IR/Constants.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include "backends/llvm/codegen_loops.h"
#include "backends/llvm/generated_formats.h"
#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::llvm_backend {
namespace {

using ir::QuantFormat;
using llvm::BasicBlock;
using llvm::Function;
using llvm::Type;
using llvm::Value;

// Codes packed per store: the most codes that make whole bytes, fit one 64-bit
// word and divide `total` (the codes of one channel run or one token).
int chunk_codes(int total, int bits) {
  int best = 0;
  for (int n = 1; n * bits <= 64; ++n)
    if (n * bits % 8 == 0 && total % n == 0) best = n;
  if (best == 0)
    throw Error("append encoder: " + std::to_string(total) + " codes of " + std::to_string(bits) +
                " bits are not a whole number of bytes");
  return best;
}

std::string format_part(char tensor, const QuantFormat& f) {
  std::string s(1, tensor);
  s += std::to_string(f.bits);
  if (f.bits < 16) {
    s += f.axis == ir::QuantAxis::PerChannel ? "pc" : "pt";
    s += std::to_string(f.group);
  }
  return s;
}

// Field indices of kvc_append_args (backends/kernel_abi.h).
enum ArgField { kKeys, kValues, kBlock };

class AppendGen {
 public:
  AppendGen(llvm::Module& m, const ir::KernelSpec& s) : ctx_(m.getContext()), mod_(m), s_(s), b_(ctx_) {
    f32_ = b_.getFloatTy();
    f16_ = b_.getHalfTy();
    i8_ = b_.getInt8Ty();
    i16_ = b_.getInt16Ty();
    i32_ = b_.getInt32Ty();
    i64_ = b_.getInt64Ty();
    ptr_ = b_.getPtrTy();
    lanes_ = s.isa == ir::KernelIsa::Avx512 ? 16 : s.isa == ir::KernelIsa::Avx2 ? 8 : 1;
    // No fast-math flags: every operation must round exactly as the reference's C++ does.
  }

  void emit(const std::string& name) {
    auto* ft = llvm::FunctionType::get(b_.getVoidTy(), {ptr_}, false);
    Function* f = Function::Create(ft, Function::ExternalLinkage, name, mod_);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    f->addParamAttr(0, llvm::Attribute::NoAlias);
    b_.SetInsertPoint(BasicBlock::Create(ctx_, "entry", f));
    auto* args_ty = llvm::StructType::get(ctx_, {ptr_, ptr_, ptr_});
    auto field = [&](ArgField i) {
      return b_.CreateAlignedLoad(ptr_, b_.CreateStructGEP(args_ty, f->getArg(0), static_cast<unsigned>(i)),
                                  llvm::Align(8));
    };
    Value* keys = field(kKeys);
    Value* values = field(kValues);
    Value* block = field(kBlock);
    const int b = s_.token_block;
    encode_section(s_.key, s_.key_dims, b, keys, block);
    encode_section(s_.value, s_.head_dim, b, values, gep_b(block, c64(ir::section_bytes(s_.key, s_.key_dims, b))));
    b_.CreateRetVoid();
  }

 private:
  // ---- small IR helpers (a lane count of 1 gives plain scalars) --------------
  Type* vec(Type* elem, int n) const {
    return n == 1 ? elem : static_cast<Type*>(llvm::FixedVectorType::get(elem, static_cast<unsigned>(n)));
  }
  llvm::Constant* c64(std::int64_t v) { return b_.getInt64(static_cast<std::uint64_t>(v)); }
  llvm::Constant* cf(double v, int n) { return llvm::ConstantFP::get(vec(f32_, n), v); }
  Value* splat(Value* s, int n) { return n == 1 ? s : b_.CreateVectorSplat(static_cast<unsigned>(n), s); }
  Value* gep_b(Value* p, Value* i) { return b_.CreateGEP(i8_, p, i); }
  Value* gep_f(Value* p, Value* i) { return b_.CreateGEP(f32_, p, i); }
  Value* load_f(Value* p, int n) { return b_.CreateAlignedLoad(vec(f32_, n), p, llvm::Align(4)); }
  Value* lane(Value* v, int l) { return v->getType()->isVectorTy() ? b_.CreateExtractElement(v, b_.getInt64(l)) : v; }
  // Lanes 0, 1, .., n-1 as i32 (the in-group index of each lane's first element).
  Value* iota(int n) {
    std::vector<std::uint32_t> idx;
    for (int i = 0; i < n; ++i) idx.push_back(static_cast<std::uint32_t>(i));
    return n == 1 ? static_cast<Value*>(b_.getInt32(0)) : llvm::ConstantDataVector::get(ctx_, idx);
  }
  // fp32 -> fp16 bits, round to nearest even (support/half.h float_to_half).
  Value* to_half(Value* x, int n) { return b_.CreateFPTrunc(x, vec(f16_, n)); }
  Value* from_half(Value* h, int n) { return b_.CreateFPExt(h, vec(f32_, n)); }
  void store_half(Value* h, Value* p) { b_.CreateAlignedStore(h, p, llvm::Align(1)); }

  // A variable in the entry block that mem2reg turns into a register.
  Value* var(Type* t) {
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    BasicBlock& entry = b_.GetInsertBlock()->getParent()->getEntryBlock();
    b_.SetInsertPoint(&entry, entry.begin());
    return b_.CreateAlloca(t);
  }
  Value* bytes_buffer(std::int64_t n) {
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    BasicBlock& entry = b_.GetInsertBlock()->getParent()->getEntryBlock();
    b_.SetInsertPoint(&entry, entry.begin());
    auto* a = b_.CreateAlloca(i8_, c64(n));
    a->setAlignment(llvm::Align(64));
    return a;
  }

  // for (iv = begin; iv < end; iv += step) body(iv), not unrolled (see emit_loop).
  void loop(std::int64_t begin, std::int64_t end, std::int64_t step, const std::function<void(Value*)>& body) {
    if (begin >= end) return;
    emit_loop(b_, c64(begin), c64(end), step, body);
  }

  // ---- quantization ----------------------------------------------------------
  struct Params {
    Value* min;  // m' as fp32 (n lanes)
    Value* inv;  // 1 / s' in fp32, 0 when s' == 0
  };

  // s = (hi - lo) / levels in fp32; m' and s' are their fp16 roundings, which are
  // what is stored and what the codes are computed from.
  Params params(Value* lo, Value* hi, int bits, int n, Value* scale_dst, Value* min_dst) {
    Value* s = b_.CreateFDiv(b_.CreateFSub(hi, lo), cf((1 << bits) - 1, n));
    Value* m16 = to_half(lo, n);
    Value* s16 = to_half(s, n);
    store_half(s16, scale_dst);
    store_half(m16, min_dst);
    Value* s_read = from_half(s16, n);
    Value* inv = b_.CreateSelect(b_.CreateFCmpUNE(s_read, cf(0, n)), b_.CreateFDiv(cf(1, n), s_read), cf(0, n));
    return {from_half(m16, n), inv};
  }

  // clamp(nearbyint((x - m') * inv), 0, levels) as i32: std::clamp's comparisons in
  // its order, and round-half-even (the default rounding mode nearbyint uses).
  Value* quantize(Value* x, const Params& p, int bits, int n) {
    Value* q = b_.CreateFMul(b_.CreateFSub(x, p.min), p.inv);
    q = b_.CreateIntrinsic(llvm::Intrinsic::roundeven, {q->getType()}, {q});
    Value* levels = cf((1 << bits) - 1, n);
    Value* hi = b_.CreateSelect(b_.CreateFCmpOLT(levels, q), levels, q);
    q = b_.CreateSelect(b_.CreateFCmpOLT(q, cf(0, n)), cf(0, n), hi);
    return b_.CreateFPToUI(q, vec(i32_, n));
  }

  // The reference's running min (max): lo = x < lo ? x : lo over the group in order,
  // i.e. the FIRST element attaining the minimum. Lanes keep their own first one and
  // its index; the lanes are then folded, ties going to the lower index, so even the
  // sign of a zero minimum agrees.
  Value* first_extreme(Value* vals, Value* idx, int n, bool max) {
    for (int half = n / 2; half >= 1; half /= 2) {
      std::vector<int> lo_mask, hi_mask;
      for (int i = 0; i < half; ++i) {
        lo_mask.push_back(i);
        hi_mask.push_back(half + i);
      }
      Value* a = b_.CreateShuffleVector(vals, lo_mask);
      Value* b = b_.CreateShuffleVector(vals, hi_mask);
      Value* ia = b_.CreateShuffleVector(idx, lo_mask);
      Value* ib = b_.CreateShuffleVector(idx, hi_mask);
      Value* better = max ? b_.CreateFCmpOLT(a, b) : b_.CreateFCmpOLT(b, a);
      Value* tie = b_.CreateAnd(b_.CreateFCmpOEQ(a, b), b_.CreateICmpULT(ib, ia));
      Value* take = b_.CreateOr(better, tie);
      vals = b_.CreateSelect(take, b, a);
      idx = b_.CreateSelect(take, ib, ia);
    }
    return lane(vals, 0);
  }

  // ---- sections (ir/layout.h "Main block layout") ---------------------------
  void encode_section(const QuantFormat& f, int dims, int block, Value* x, Value* out) {
    if (f.bits >= 16) {
      const int n = largest_pow2_lanes(lanes_, block * dims);
      loop(0, static_cast<std::int64_t>(block) * dims, n, [&](Value* i) {
        store_half(to_half(load_f(gep_f(x, i), n), n), b_.CreateGEP(i16_, out, i));
      });
      return;
    }
    if (f.axis == ir::QuantAxis::PerChannel)
      encode_per_channel(f.bits, dims, block, x, out);
    else
      encode_per_token(f, dims, block, x, out);
  }

  // scale[dims], min[dims], then per channel its `block` codes packed. Lanes run
  // across channels, so the min/max over a channel's tokens is a lane-wise running
  // select in token order (no horizontal step), and a channel's codes are packed
  // into a 64-bit word per lane with vector shifts and ors, then stored per lane.
  void encode_per_channel(int bits, int dims, int block, Value* x, Value* out) {
    const int n = largest_pow2_lanes(lanes_, dims);
    const int run = block * bits / 8;
    const int chunk = chunk_codes(block, bits);
    Type* vt = vec(f32_, n);
    Type* wt = vec(i64_, n);
    Type* word_store = b_.getIntNTy(static_cast<unsigned>(chunk * bits));
    Value* lo_var = var(vt);
    Value* hi_var = var(vt);
    Value* codes_base = gep_b(out, c64(4LL * dims));
    loop(0, dims, n, [&](Value* c0) {
      Value* first = load_f(gep_f(x, c0), n);
      b_.CreateStore(first, lo_var);
      b_.CreateStore(first, hi_var);
      loop(1, block, 1, [&](Value* t) {
        Value* v = load_f(gep_f(x, b_.CreateAdd(b_.CreateMul(t, c64(dims)), c0)), n);
        Value* lo = b_.CreateLoad(vt, lo_var);
        Value* hi = b_.CreateLoad(vt, hi_var);
        b_.CreateStore(b_.CreateSelect(b_.CreateFCmpOLT(v, lo), v, lo), lo_var);
        b_.CreateStore(b_.CreateSelect(b_.CreateFCmpOLT(hi, v), v, hi), hi_var);
      });
      Value* c0_bytes = b_.CreateMul(c0, c64(2));
      const Params p = params(b_.CreateLoad(vt, lo_var), b_.CreateLoad(vt, hi_var), bits, n, gep_b(out, c0_bytes),
                              gep_b(out, b_.CreateAdd(c0_bytes, c64(2LL * dims))));
      loop(0, block, chunk, [&](Value* t0) {
        Value* word = llvm::Constant::getNullValue(wt);
        for (int i = 0; i < chunk; ++i) {
          Value* row = b_.CreateMul(b_.CreateAdd(t0, c64(i)), c64(dims));
          Value* code = b_.CreateZExt(quantize(load_f(gep_f(x, b_.CreateAdd(row, c0)), n), p, bits, n), wt);
          word = b_.CreateOr(word, b_.CreateShl(code, llvm::ConstantInt::get(wt, static_cast<std::uint64_t>(i * bits))));
        }
        Value* byte0 = b_.CreateUDiv(b_.CreateMul(t0, c64(bits)), c64(8));
        for (int l = 0; l < n; ++l) {
          Value* channel_run = b_.CreateMul(b_.CreateAdd(c0, c64(l)), c64(run));
          b_.CreateAlignedStore(b_.CreateTrunc(lane(word, l), word_store),
                                gep_b(codes_base, b_.CreateAdd(channel_run, byte0)), llvm::Align(1));
        }
      });
    });
  }

  // Per token: scale[dims/G], min[dims/G], then its dims codes packed. Lanes run
  // across the channels of a group; the codes of the whole token go through a small
  // stack buffer and are packed a 64-bit word at a time.
  void encode_per_token(const QuantFormat& f, int dims, int block, Value* x, Value* out) {
    const int bits = f.bits, group = f.group, groups = dims / group;
    const int n = largest_pow2_lanes(lanes_, group);
    const std::int64_t token_bytes = 4LL * groups + static_cast<std::int64_t>(dims) * bits / 8;
    const int chunk = chunk_codes(dims, bits);
    Type* vt = vec(f32_, n);
    Type* it = vec(i32_, n);
    Value* lo_var = var(vt);
    Value* hi_var = var(vt);
    Value* lo_idx = var(it);
    Value* hi_idx = var(it);
    Value* codes = bytes_buffer(dims);
    loop(0, block, 1, [&](Value* t) {
      Value* xt = gep_f(x, b_.CreateMul(t, c64(dims)));
      Value* tok = gep_b(out, b_.CreateMul(t, c64(token_bytes)));
      loop(0, groups, 1, [&](Value* j) {
        Value* base = gep_f(xt, b_.CreateMul(j, c64(group)));
        Value* first = load_f(base, n);
        b_.CreateStore(first, lo_var);
        b_.CreateStore(first, hi_var);
        b_.CreateStore(iota(n), lo_idx);
        b_.CreateStore(iota(n), hi_idx);
        loop(n, group, n, [&](Value* c) {
          Value* v = load_f(gep_f(base, c), n);
          Value* ci = b_.CreateAdd(splat(b_.CreateTrunc(c, i32_), n), iota(n));
          Value* lo = b_.CreateLoad(vt, lo_var);
          Value* hi = b_.CreateLoad(vt, hi_var);
          Value* lt = b_.CreateFCmpOLT(v, lo);
          Value* gt = b_.CreateFCmpOLT(hi, v);
          b_.CreateStore(b_.CreateSelect(lt, v, lo), lo_var);
          b_.CreateStore(b_.CreateSelect(gt, v, hi), hi_var);
          b_.CreateStore(b_.CreateSelect(lt, ci, b_.CreateLoad(it, lo_idx)), lo_idx);
          b_.CreateStore(b_.CreateSelect(gt, ci, b_.CreateLoad(it, hi_idx)), hi_idx);
        });
        Value* lo = first_extreme(b_.CreateLoad(vt, lo_var), b_.CreateLoad(it, lo_idx), n, false);
        Value* hi = first_extreme(b_.CreateLoad(vt, hi_var), b_.CreateLoad(it, hi_idx), n, true);
        Value* j_bytes = b_.CreateMul(j, c64(2));
        const Params scalar = params(lo, hi, bits, 1, gep_b(tok, j_bytes), gep_b(tok, b_.CreateAdd(j_bytes, c64(2LL * groups))));
        const Params p{splat(scalar.min, n), splat(scalar.inv, n)};
        loop(0, group, n, [&](Value* c) {
          Value* q = quantize(load_f(gep_f(base, c), n), p, bits, n);
          b_.CreateAlignedStore(b_.CreateTrunc(q, vec(i8_, n)),
                                gep_b(codes, b_.CreateAdd(b_.CreateMul(j, c64(group)), c)), llvm::Align(1));
        });
      });
      pack_token(codes, dims, bits, chunk, gep_b(tok, c64(4LL * groups)));
    });
  }

  // codes[0..dims) -> little-endian bit stream at `dst`, `chunk` codes per store.
  void pack_token(Value* codes, int dims, int bits, int chunk, Value* dst) {
    Type* word_store = b_.getIntNTy(static_cast<unsigned>(chunk * bits));
    loop(0, dims, chunk, [&](Value* j0) {
      Value* word = nullptr;
      if (lanes_ > 1 && chunk > 1) {
        // Vector: widen the chunk's codes to 64-bit lanes, shift each to its bit
        // offset, or them together.
        auto* ct = llvm::FixedVectorType::get(i8_, static_cast<unsigned>(chunk));
        auto* wt = llvm::FixedVectorType::get(i64_, static_cast<unsigned>(chunk));
        std::vector<std::uint64_t> shifts;
        for (int i = 0; i < chunk; ++i) shifts.push_back(static_cast<std::uint64_t>(i * bits));
        Value* wide = b_.CreateZExt(b_.CreateAlignedLoad(ct, gep_b(codes, j0), llvm::Align(1)), wt);
        word = b_.CreateOrReduce(b_.CreateShl(wide, llvm::ConstantDataVector::get(ctx_, shifts)));
      } else {
        word = c64(0);
        for (int i = 0; i < chunk; ++i) {
          Value* code = b_.CreateZExt(b_.CreateLoad(i8_, gep_b(codes, b_.CreateAdd(j0, c64(i)))), i64_);
          word = b_.CreateOr(word, b_.CreateShl(code, c64(i * bits)));
        }
      }
      Value* byte0 = b_.CreateUDiv(b_.CreateMul(j0, c64(bits)), c64(8));
      b_.CreateAlignedStore(b_.CreateTrunc(word, word_store), gep_b(dst, byte0), llvm::Align(1));
    });
  }

  llvm::LLVMContext& ctx_;
  llvm::Module& mod_;
  ir::KernelSpec s_;
  llvm::IRBuilder<> b_;
  Type *f32_, *f16_, *i8_, *i16_, *i32_, *i64_;
  llvm::PointerType* ptr_;
  int lanes_ = 1;
};

}  // namespace

ir::KernelSpec append_spec(ir::KernelSpec spec) {
  spec.g = 1;
  if (spec.key.bits == 16) spec.key = QuantFormat{16, ir::QuantAxis::PerChannel, 32};
  if (spec.value.bits == 16) spec.value = QuantFormat{16, ir::QuantAxis::PerToken, 32};
  return spec;
}

std::string append_kernel_name(const ir::KernelSpec& s) {
  std::string n = "kvc_append_" + format_part('k', s.key) + "_" + format_part('v', s.value) + "_d" +
                  std::to_string(s.head_dim);
  if (s.lowrank) n += "_r" + std::to_string(s.key_dims);
  n += "_";
  n += ir::to_string(s.isa);
  return n;
}

void add_append_function(llvm::Module& module, const ir::KernelSpec& spec) {
  require_generated_formats(spec);
  if (spec.isa == ir::KernelIsa::Host) throw Error("append encoder: resolve the isa before generating code");
  ir::validate(spec);
  AppendGen(module, spec).emit(append_kernel_name(spec));
}

}  // namespace kvc::llvm_backend
