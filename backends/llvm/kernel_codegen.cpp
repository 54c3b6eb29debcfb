#include "backends/llvm/kernel_codegen.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <llvm/IR/Constants.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsX86.h>
#include <llvm/IR/Module.h>

#include "backends/llvm/codegen_loops.h"
#include "backends/llvm/generated_formats.h"
#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::llvm_backend {
namespace {

using llvm::BasicBlock;
using llvm::Function;
using llvm::Type;
using llvm::Value;
using ir::QuantFormat;

// Tokens of fp16 / per-token data handled per softmax update when each main block
// holds one token (B = 1) and in the tail: enough that the exp and the rescale
// of the accumulators are amortised, few enough that the chunk stays in L1.
constexpr int kChunkTokens = 32;

// How far ahead (in bytes of main blocks) the attention pass prefetches: a few
// memory latencies' worth of one core's bandwidth, and well inside L2.
constexpr std::int64_t kPrefetchBytes = 16384;

// Per-head, per-group bodies emitted as straight-line code before the groups
// become a loop again (code size and compile time).
constexpr int kMaxUnrolledGroupBodies = 32;

// Field indices of kvc_attend_args (backends/kernel_abi.h).
enum ArgField { kBlocks, kNBlocks, kTailK, kTailV, kNTail, kQ, kBasis, kOut, kProbs };

class KernelGen {
 public:
  KernelGen(llvm::Module& m, const ir::KernelSpec& s, bool vnni)
      : ctx_(m.getContext()), mod_(m), s_(s), b_(ctx_) {
    f32_ = b_.getFloatTy();
    f16_ = b_.getHalfTy();
    i8_ = b_.getInt8Ty();
    i16_ = b_.getInt16Ty();
    i32_ = b_.getInt32Ty();
    i64_ = b_.getInt64Ty();
    ptr_ = b_.getPtrTy();
    args_ty_ = llvm::StructType::get(ctx_, {ptr_, i64_, ptr_, ptr_, i64_, ptr_, ptr_, ptr_, ptr_});
    w_ = s.isa == ir::KernelIsa::Avx512 ? 16 : s.isa == ir::KernelIsa::Avx2 ? 8 : 1;
    d_ = s.head_dim;
    kd_ = s.key_dims;
    g_ = s.g;
    bt_ = s.token_block;
    sbuf_stride_ = round_up(std::max(bt_, kChunkTokens), std::max(w_, 16));
    use_vnni_ = s.int8_dot && s.isa == ir::KernelIsa::Avx512 && vnni;
    int8_keys_ = s.int8_dot && ir::int8_dot_keys(s);
    int8_values_ = s.int8_dot && ir::int8_dot_values(s);
    llvm::FastMathFlags fmf;
    fmf.setAllowContract(true);
    fmf.setAllowReassoc(true);
    b_.setFastMathFlags(fmf);
  }

  // The attention pass itself, in one internal function that both entries call
  // (one copy of the code keeps compile time down):
  //   body(args, b0, b1, with_tail, state = m[g] l[g] acc[g][d], probs or null).
  Function* emit_body(const std::string& name) {
    Function* f = make_function(name, {ptr_, i64_, i64_, i32_, ptr_, ptr_});
    f->setLinkage(Function::InternalLinkage);
    f->addFnAttr(llvm::Attribute::NoInline);
    Value* args = f->getArg(0);
    setup(args);
    Value* state = f->getArg(4);
    Value* m = state;
    Value* l = gep_f(state, c64(g_));
    Value* acc = gep_f(state, c64(2 * g_));
    init_state(m, l, acc);
    if (int8_values_) init_int8_values();
    Value* with_tail = b_.CreateICmpNE(f->getArg(3), b_.getInt32(0));
    attend_range(args, f->getArg(1), f->getArg(2), with_tail, m, l, acc, f->getArg(5));
    b_.CreateRetVoid();
    return f;
  }

  void emit_partial(const std::string& name, Function* body) {
    Function* f = make_function(name, {ptr_, i64_, i64_, i32_, ptr_});
    b_.CreateCall(body, {f->getArg(0), f->getArg(1), f->getArg(2), f->getArg(3), f->getArg(4),
                         llvm::ConstantPointerNull::get(llvm::PointerType::get(ctx_, 0))});
    b_.CreateRetVoid();
  }

  void emit_full(const std::string& name, Function* body) {
    Function* f = make_function(name, {ptr_});
    Value* args = f->getArg(0);
    Value* state = alloca_f(static_cast<std::int64_t>(g_) * (d_ + 2), "state");
    Value* m = state;
    Value* l = gep_f(state, c64(g_));
    Value* acc = gep_f(state, c64(2 * g_));
    Value* probs = field(args, kProbs);
    Value* n_blocks = field(args, kNBlocks);
    b_.CreateCall(body, {args, c64(0), n_blocks, b_.getInt32(1), state, probs});
    // out = acc / l; a call with no tokens leaves l = 0 and writes zeros.
    Value* out = field(args, kOut);
    const int cw = largest_pow2_lanes(w_, d_);
    loop(c64(0), c64(g_), 1, [&](Value* h) {
      Value* lh = load_f(gep_f(l, h));
      Value* inv = b_.CreateSelect(b_.CreateFCmpOGT(lh, cf(0)), b_.CreateFDiv(cf(1), lh), cf(0));
      Value* row = b_.CreateMul(h, c64(d_));
      loop(c64(0), c64(d_), cw, [&](Value* c) {
        Value* v = load_v(gep_f(acc, add(c, row)), cw);
        store_v(b_.CreateFMul(v, splat(inv, cw)), gep_f(out, add(c, row)));
      });
    });
    // probs held the raw scaled scores; turn them into softmax weights now that max and sum are final.
    if_nonnull(probs, [&] {
      Value* total = add(b_.CreateMul(n_blocks, c64(bt_)), field(args, kNTail));
      loop(c64(0), c64(g_), 1, [&](Value* h) {
        Value* mh = load_f(gep_f(m, h));
        Value* inv = b_.CreateFDiv(cf(1), load_f(gep_f(l, h)));
        Value* row = gep_f(probs, b_.CreateMul(total, h));
        loop(c64(0), total, 1, [&](Value* t) {
          Value* p = gep_f(row, t);
          store_f(b_.CreateFMul(exp_v(b_.CreateFSub(load_f(p), mh)), inv), p);
        });
      });
    });
    b_.CreateRetVoid();
  }

 private:
  static int round_up(int x, int m) { return (x + m - 1) / m * m; }

  // ---- small IR helpers ----------------------------------------------------
  llvm::Constant* c64(std::int64_t v) { return b_.getInt64(static_cast<std::uint64_t>(v)); }
  llvm::Constant* cf(double v) { return llvm::ConstantFP::get(f32_, v); }
  Value* add(Value* a, Value* c) { return b_.CreateAdd(a, c); }
  Value* gep_f(Value* p, Value* i) { return b_.CreateGEP(f32_, p, i); }
  Value* gep_b(Value* p, Value* i) { return b_.CreateGEP(i8_, p, i); }
  Value* m_at(Value* p, int h) { return gep_f(p, c64(h)); }
  Value* load_f(Value* p) { return b_.CreateAlignedLoad(f32_, p, llvm::Align(4)); }
  void store_f(Value* v, Value* p) { b_.CreateAlignedStore(v, p, llvm::Align(4)); }
  llvm::FixedVectorType* vf(int n) { return llvm::FixedVectorType::get(f32_, static_cast<unsigned>(n)); }
  Value* load_v(Value* p, int n) { return b_.CreateAlignedLoad(vf(n), p, llvm::Align(4)); }
  void store_v(Value* v, Value* p) { b_.CreateAlignedStore(v, p, llvm::Align(4)); }
  Value* splat(Value* s, int n) { return b_.CreateVectorSplat(static_cast<unsigned>(n), s); }
  Value* load_half(Value* p) { return b_.CreateFPExt(b_.CreateAlignedLoad(f16_, p, llvm::Align(2)), f32_); }
  Value* load_half_v(Value* p, int n) {
    auto* t = llvm::FixedVectorType::get(f16_, static_cast<unsigned>(n));
    return b_.CreateFPExt(b_.CreateAlignedLoad(t, p, llvm::Align(2)), vf(n));
  }
  Value* fma(Value* a, Value* x, Value* y) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, x, y});
  }
  // Horizontal sum in a tree (log2 lanes shuffle + add steps). Without
  // `reassoc`, llvm.vector.reduce.fadd is strictly ordered: a chain of one
  // scalar add per lane on the softmax's critical path.
  Value* reduce_add(Value* v) {
    llvm::IRBuilderBase::FastMathFlagGuard guard(b_);
    llvm::FastMathFlags reassoc;
    reassoc.setAllowReassoc();
    b_.setFastMathFlags(reassoc);
    return b_.CreateFAddReduce(cf(0), v);
  }
  // max and min as x86's maxps / minps define them (a > x ? a : x): one
  // instruction. llvm.maxnum must return the other operand when one is NaN,
  // which x86 lowers to max + compare + blend per vector and, in
  // llvm.vector.reduce.fmax, to a scalar chain with a NaN test per lane. The
  // kernels' inputs are finite (or -inf), so both definitions agree on them.
  Value* fmax(Value* a, Value* x) { return b_.CreateSelect(b_.CreateFCmpOGT(a, x), a, x); }
  Value* fmin(Value* a, Value* x) { return b_.CreateSelect(b_.CreateFCmpOLT(a, x), a, x); }
  Value* clamp(Value* x, Value* lo, Value* hi) { return fmin(fmax(x, lo), hi); }
  // Horizontal max in a tree of fmax over vector halves.
  Value* reduce_max(Value* v) {
    auto n = static_cast<int>(llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements());
    for (; n > 1; n /= 2) {
      std::vector<int> lo(static_cast<std::size_t>(n / 2)), hi(lo.size());
      for (int i = 0; i < n / 2; ++i) lo[static_cast<std::size_t>(i)] = i, hi[static_cast<std::size_t>(i)] = n / 2 + i;
      v = fmax(b_.CreateShuffleVector(v, lo), b_.CreateShuffleVector(v, hi));
    }
    return b_.CreateExtractElement(v, std::uint64_t{0});
  }
  // The sums (or maxima) of each of n vectors of L lanes (n a power of two, at
  // most L) in one vector: lane i (n = L) or lane i * L / n holds input i's. A
  // transpose tree merges the vectors pairwise (two shuffles and one add or max
  // per pair and level, the two halves of every block of each into one block),
  // then butterflies finish the blocks inside the one vector left: n reductions
  // in about 3n + 2 log2(L / n) instructions instead of n chains of 2 log2(L)
  // dependent ones.
  Value* reduce_each(const std::vector<Value*>& vs, bool max) {
    const int n = static_cast<int>(vs.size());
    const int L = static_cast<int>(llvm::cast<llvm::FixedVectorType>(vs[0]->getType())->getNumElements());
    auto op = [&](Value* a, Value* x) { return max ? fmax(a, x) : b_.CreateFAdd(a, x); };
    // The vector fed at position p ends in block b(p): at each level the vector
    // of index v = p >> (level - 1) sends its block b to block 2b + (v & 1). Input
    // b(p) is fed there, so that input i ends in block i.
    std::vector<Value*> cur(static_cast<std::size_t>(n));
    for (int p = 0; p < n; ++p) {
      int b = 0;
      for (int level = 1; (1 << level) <= n; ++level) b = 2 * b + ((p >> (level - 1)) & 1);
      cur[static_cast<std::size_t>(p)] = vs[static_cast<std::size_t>(b)];
    }
    int bs = L;
    for (; cur.size() > 1; bs /= 2) {
      std::vector<int> m1, m2;
      for (int j = 0; j < L / bs; ++j) {
        for (int k = 0; k < bs / 2; ++k) m1.push_back(j * bs + k);
        for (int k = 0; k < bs / 2; ++k) m1.push_back(L + j * bs + k);
        for (int k = 0; k < bs / 2; ++k) m2.push_back(j * bs + bs / 2 + k);
        for (int k = 0; k < bs / 2; ++k) m2.push_back(L + j * bs + bs / 2 + k);
      }
      std::vector<Value*> next;
      for (std::size_t i = 0; i < cur.size(); i += 2)
        next.push_back(op(b_.CreateShuffleVector(cur[i], cur[i + 1], m1), b_.CreateShuffleVector(cur[i], cur[i + 1], m2)));
      cur = next;
    }
    Value* v = cur[0];
    for (int half = bs / 2; half >= 1; half /= 2) {
      std::vector<int> swap;
      for (int lane = 0; lane < L; ++lane) swap.push_back(lane ^ half);
      v = op(v, b_.CreateShuffleVector(v, swap));
    }
    return v;
  }

  // reduce_add / reduce_max of every vector of vs (equal vectors), as scalars:
  // through reduce_each (inputs padded to a power of two) when they fit its lanes.
  std::vector<Value*> reduce_all(std::vector<Value*> vs, bool max) {
    const std::size_t n = vs.size();
    const auto L = static_cast<std::size_t>(llvm::cast<llvm::FixedVectorType>(vs[0]->getType())->getNumElements());
    std::size_t padded = 1;
    while (padded < n) padded *= 2;
    std::vector<Value*> out;
    if (L == 1 || padded > L) {
      for (Value* v : vs) out.push_back(max ? reduce_max(v) : reduce_add(v));
      return out;
    }
    vs.resize(padded, vs[0]);
    Value* r = reduce_each(vs, max);
    for (std::size_t i = 0; i < n; ++i) out.push_back(b_.CreateExtractElement(r, static_cast<std::uint64_t>(i * (L / padded))));
    return out;
  }

  Value* field(Value* args, ArgField f) {
    Value* p = b_.CreateStructGEP(args_ty_, args, static_cast<unsigned>(f));
    Type* t = (f == kNBlocks || f == kNTail) ? static_cast<Type*>(i64_) : static_cast<Type*>(ptr_);
    return b_.CreateAlignedLoad(t, p, llvm::Align(8));
  }
  Value* alloca_f(std::int64_t n, const char* name) {
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    BasicBlock& entry = b_.GetInsertBlock()->getParent()->getEntryBlock();
    b_.SetInsertPoint(&entry, entry.begin());
    auto* a = b_.CreateAlloca(f32_, c64(n), name);
    a->setAlignment(llvm::Align(64));
    return a;
  }
  // A vector (or scalar) variable that SROA/mem2reg turn into registers.
  Value* var(Type* t, const char* name) {
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    BasicBlock& entry = b_.GetInsertBlock()->getParent()->getEntryBlock();
    b_.SetInsertPoint(&entry, entry.begin());
    return b_.CreateAlloca(t, nullptr, name);
  }
  Value* get(Value* var, Type* t) { return b_.CreateLoad(t, var); }
  void set(Value* var, Value* v) { b_.CreateStore(v, var); }

  Function* make_function(const std::string& name, std::vector<Type*> params) {
    auto* ft = llvm::FunctionType::get(b_.getVoidTy(), params, false);
    Function* f = Function::Create(ft, Function::ExternalLinkage, name, mod_);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    for (unsigned i = 0; i < f->arg_size(); ++i)
      if (params[i]->isPointerTy()) f->addParamAttr(i, llvm::Attribute::NoAlias);
    b_.SetInsertPoint(BasicBlock::Create(ctx_, "entry", f));
    return f;
  }

  // body(h) for every query head h of the group, unrolled in the IR: the heads'
  // per-block softmax steps are independent chains of dependent scalar work that
  // the CPU overlaps only when they sit side by side.
  void unrolled_heads(const std::function<void(Value*)>& body) {
    for (int h = 0; h < g_; ++h) body(c64(h));
  }

  // body(gr) for gr in [0, groups): unrolled in the IR when the heads' copies stay
  // few (at most kMaxUnrolledGroupBodies), a loop otherwise.
  void for_groups(int groups, const std::function<void(Value*)>& body) {
    if (g_ * groups <= kMaxUnrolledGroupBodies) {
      for (int gr = 0; gr < groups; ++gr) body(c64(gr));
    } else {
      loop(c64(0), c64(groups), 1, body);
    }
  }

  // for (iv = begin; iv < end; iv += step) body(iv), with `unroll` copies (see emit_loop).
  void loop(Value* begin, Value* end, std::int64_t step, const std::function<void(Value*)>& body,
            int unroll = 1) {
    emit_loop(b_, begin, end, step, body, unroll);
  }

  void if_true(Value* cond, const std::function<void()>& then) {
    Function* f = b_.GetInsertBlock()->getParent();
    BasicBlock* yes = BasicBlock::Create(ctx_, "then", f);
    BasicBlock* done = BasicBlock::Create(ctx_, "endif", f);
    b_.CreateCondBr(cond, yes, done);
    b_.SetInsertPoint(yes);
    then();
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }
  void if_nonnull(Value* p, const std::function<void()>& then) { if_true(b_.CreateIsNotNull(p), then); }

  // Software prefetch (into all cache levels) of the 64-byte line at p; never faults.
  void prefetch_line(Value* p) {
    b_.CreateIntrinsic(llvm::Intrinsic::prefetch, {ptr_}, {p, b_.getInt32(0), b_.getInt32(3), b_.getInt32(1)});
  }
  // ... of every line of [p, p + bytes).
  void prefetch_range(Value* p, std::int64_t bytes) {
    for (std::int64_t off = 0; off < bytes; off += 64) prefetch_line(gep_b(p, c64(off)));
  }

  // exp(x) for a float or float vector: Cephes expf (range reduction by ln 2,
  // degree-6 polynomial, 2^n by exponent bits), about 1 ulp; exactly 0 below -87.
  Value* exp_v(Value* x) {
    Type* t = x->getType();
    auto c = [&](double v) { return llvm::ConstantFP::get(t, v); };
    Value* xc = clamp(x, c(-87.0), c(88.0));
    Value* fx = b_.CreateIntrinsic(llvm::Intrinsic::rint, {t}, {b_.CreateFMul(xc, c(1.44269504088896341))});
    Value* r = fma(fx, c(-0.693359375), xc);
    r = fma(fx, c(2.12194440e-4), r);
    Value* p = c(1.9875691500E-4);
    for (double k : {1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1})
      p = fma(p, r, c(k));
    Value* r2 = b_.CreateFMul(r, r);
    p = fma(p, r2, b_.CreateFAdd(r, c(1.0)));
    Type* it = t->isVectorTy() ? static_cast<Type*>(llvm::VectorType::get(i32_, llvm::cast<llvm::VectorType>(t)))
                               : static_cast<Type*>(i32_);
    Value* n = b_.CreateFPToSI(fx, it);
    Value* bits = b_.CreateShl(b_.CreateAdd(n, llvm::ConstantInt::get(it, 127)), llvm::ConstantInt::get(it, 23));
    Value* y = b_.CreateFMul(p, b_.CreateBitCast(bits, t));
    return b_.CreateSelect(b_.CreateFCmpOLT(x, c(-87.0)), c(0.0), y);
  }

  // `n` packed codes of `bits` bits, the first being code number `first` of a
  // little-endian bit stream at `base` that is `row_bytes` long, as floats.
  Value* unpack(Value* base, Value* first, int n, int bits, int row_bytes) {
    auto* ft = vf(n);
    if (bits == 8) {
      auto* t = llvm::FixedVectorType::get(i8_, static_cast<unsigned>(n));
      return b_.CreateUIToFP(b_.CreateAlignedLoad(t, gep_b(base, first), llvm::Align(1)), ft);
    }
    const unsigned mask = (1u << bits) - 1;
    if (n * bits % 8 == 0) {
      // `first` is a multiple of n, so the codes start on a byte: load their bytes
      // and shuffle each code's two bytes into a 16-bit lane, then shift and mask.
      const int nb = n * bits / 8;
      Value* byte0 = b_.CreateUDiv(b_.CreateMul(first, c64(bits)), c64(8));
      auto* bt = llvm::FixedVectorType::get(i8_, static_cast<unsigned>(nb));
      Value* bytes = b_.CreateAlignedLoad(bt, gep_b(base, byte0), llvm::Align(1));
      std::vector<int> sh_mask;
      std::vector<std::uint16_t> shifts;
      for (int j = 0; j < n; ++j) {
        const int bit = j * bits;
        sh_mask.push_back(bit / 8);
        sh_mask.push_back(bit / 8 + 1 < nb ? bit / 8 + 1 : nb);  // index nb = a zero byte
        shifts.push_back(static_cast<std::uint16_t>(bit % 8));
      }
      Value* pairs = b_.CreateShuffleVector(bytes, llvm::Constant::getNullValue(bt), sh_mask);
      auto* wt = llvm::FixedVectorType::get(i16_, static_cast<unsigned>(n));
      Value* words = b_.CreateBitCast(pairs, wt);
      Value* codes = b_.CreateAnd(b_.CreateLShr(words, llvm::ConstantDataVector::get(ctx_, shifts)),
                                  b_.CreateVectorSplat(static_cast<unsigned>(n), b_.getInt16(mask)));
      return b_.CreateUIToFP(codes, ft);
    }
    // Codes not starting on a byte (scalar path, 3-bit): two bytes per code, the
    // second clamped to the row so the last code never reads past it.
    Value* out = llvm::PoisonValue::get(ft);
    for (int j = 0; j < n; ++j) {
      Value* pos = b_.CreateMul(add(first, c64(j)), c64(bits));
      Value* byte = b_.CreateLShr(pos, c64(3));
      Value* next = add(byte, c64(1));
      next = b_.CreateSelect(b_.CreateICmpSLT(next, c64(row_bytes)), next, c64(row_bytes - 1));
      Value* lo = b_.CreateZExt(b_.CreateLoad(i8_, gep_b(base, byte)), i32_);
      Value* hi = b_.CreateZExt(b_.CreateLoad(i8_, gep_b(base, next)), i32_);
      Value* word = b_.CreateOr(lo, b_.CreateShl(hi, b_.getInt32(8)));
      Value* sh = b_.CreateTrunc(b_.CreateAnd(pos, c64(7)), i32_);
      Value* code = b_.CreateAnd(b_.CreateLShr(word, sh), b_.getInt32(mask));
      out = b_.CreateInsertElement(out, b_.CreateUIToFP(code, f32_), b_.getInt64(static_cast<std::uint64_t>(j)));
    }
    return out;
  }

  // ---- formats -------------------------------------------------------------
  // Bytes of one token in a token-major section (fp16 or per-token codes).
  static std::int64_t token_bytes(const QuantFormat& f, int dims) { return ir::section_bytes(f, dims, 1); }

  static bool per_channel(const QuantFormat& f) { return f.bits < 16 && f.axis == ir::QuantAxis::PerChannel; }

  // Lanes of a channel chunk of a token-major vector: divides dims and a per-token group.
  int channel_lanes(const QuantFormat& f, int dims) const {
    int w = largest_pow2_lanes(w_, dims);
    if (f.bits < 16) w = largest_pow2_lanes(w, f.group);
    return w;
  }

  // Channels [c, c+cw) of a token-major token at `tok` in format f, dequantised.
  Value* token_chunk(Value* tok, const QuantFormat& f, int dims, Value* c, int cw) {
    if (f.bits == 16) return load_half_v(b_.CreateGEP(i16_, tok, c), cw);
    const int groups = dims / f.group;
    Value* grp = b_.CreateUDiv(c, c64(f.group));
    Value* s = load_half(b_.CreateGEP(i16_, tok, grp));
    Value* m = load_half(b_.CreateGEP(i16_, tok, add(grp, c64(groups))));
    Value* codes = unpack(gep_b(tok, c64(4LL * groups)), c, cw, f.bits, dims * f.bits / 8);
    return fma(codes, splat(s, cw), splat(m, cw));
  }

  // ---- the attention pass --------------------------------------------------
  void setup(Value* args) {
    // Stack buffers: scaled query, the query keys are dotted with, chunk scores.
    qs_ = alloca_f(static_cast<std::int64_t>(g_) * d_, "qs");
    qk_ = s_.lowrank ? alloca_f(static_cast<std::int64_t>(g_) * kd_, "qk") : qs_;
    sbuf_ = alloca_f(static_cast<std::int64_t>(g_) * sbuf_stride_, "scores");
    if (per_channel(s_.key)) qsc_ = alloca_f(static_cast<std::int64_t>(g_) * kd_, "q_times_scale");
    // int8 query codes [g][kd] (kd is a multiple of 4, so kd/4 floats hold them).
    if (int8_values_) {
      const ValueTiles t = value_tiles();
      vhdr_ = alloca_f(2LL * t.groups * bt_, "value_headers");
      vweights_ = alloca_f(static_cast<std::int64_t>(g_) * t.groups * bt_ / 4, "value_weights");
      vsums_ = alloca_f(static_cast<std::int64_t>(g_) * t.vectors() * 16, "value_sums");
      vmins_ = alloca_f(static_cast<std::int64_t>(g_) * t.groups * 16, "value_min_sums");
      vsteps_ = alloca_f(static_cast<std::int64_t>(g_) * t.groups, "value_steps");
      vblock_steps_ = alloca_f(t.groups, "value_block_steps");
      if (tiles_up_front(t)) vtiles_ = alloca_f(static_cast<std::int64_t>(bt_ / t.tq) * t.chunks * 16, "value_tiles");
    }
    if (int8_keys_) qi_ = alloca_f(static_cast<std::int64_t>(g_) * kd_ / 4, "q_int8");
    const float scale = 1.0f / std::sqrt(static_cast<float>(d_));
    Value* q = field(args, kQ);
    const int cw = largest_pow2_lanes(w_, d_);
    {
      // A plain IEEE product: the int8 query is quantized from exactly this value.
      llvm::IRBuilderBase::FastMathFlagGuard exact(b_);
      b_.clearFastMathFlags();
      loop(c64(0), c64(static_cast<std::int64_t>(g_) * d_), cw, [&](Value* i) {
        store_v(b_.CreateFMul(load_v(gep_f(q, i), cw), splat(cf(scale), cw)), gep_f(qs_, i));
      });
    }
    if (s_.lowrank) {
      // Keys are basis * coefficients, so q.k = (basis^T q) . coefficients.
      Value* basis = field(args, kBasis);
      const int rw = largest_pow2_lanes(w_, kd_);
      loop(c64(0), c64(static_cast<std::int64_t>(g_) * kd_), rw,
           [&](Value* i) { store_v(llvm::Constant::getNullValue(vf(rw)), gep_f(qk_, i)); });
      loop(c64(0), c64(d_), 1, [&](Value* c) {
        Value* row = gep_f(basis, b_.CreateMul(c, c64(kd_)));
        loop(c64(0), c64(kd_), rw, [&](Value* r) {
          Value* bv = load_v(gep_f(row, r), rw);
          for (int h = 0; h < g_; ++h) {
            Value* qh = load_f(gep_f(qs_, add(c, c64(static_cast<std::int64_t>(h) * d_))));
            Value* dst = gep_f(qk_, add(r, c64(static_cast<std::int64_t>(h) * kd_)));
            store_v(fma(splat(qh, rw), bv, load_v(dst, rw)), dst);
          }
        });
      });
    }
  }

  void init_state(Value* m, Value* l, Value* acc) {
    for (int h = 0; h < g_; ++h) {
      store_f(cf(-std::numeric_limits<float>::infinity()), m_at(m, h));
      store_f(cf(0), m_at(l, h));
    }
    loop(c64(0), c64(static_cast<std::int64_t>(g_) * d_), 1, [&](Value* i) { store_f(cf(0), gep_f(acc, i)); });
  }

  Value* srow(int h) { return gep_f(sbuf_, c64(static_cast<std::int64_t>(h) * sbuf_stride_)); }

  using TokenPtr = std::function<Value*(Value* i)>;

  // Tokens whose scores one pass of scores_token_major computes together: g * T
  // accumulators (about 16 vector registers), reduced together.
  int score_tokens() const { return largest_pow2_lanes(std::max(1, 16 / g_), kChunkTokens); }

  // Horizontal sums of many vectors of w lanes at once: returns ceil(n / w)
  // vectors whose lane j holds the sum of the lanes of input j (of its group of
  // w). A transpose-add tree: each level adds the two halves of every block of
  // two vectors into one, so w vectors take w - 1 adds and 2 (w - 1) shuffles
  // instead of w separate reductions of log2(w) shuffle + add steps each.
  std::vector<Value*> reduce_many(const std::vector<Value*>& vs, int w) {
    if (w == 1) return vs;
    std::vector<Value*> out;
    for (std::size_t g0 = 0; g0 < vs.size(); g0 += static_cast<std::size_t>(w)) {
      std::vector<Value*> part(static_cast<std::size_t>(w), llvm::Constant::getNullValue(vf(w)));
      for (std::size_t j = 0; j < part.size() && g0 + j < vs.size(); ++j) part[j] = vs[g0 + j];
      out.push_back(reduce_each(part, false));
    }
    return out;
  }

  // Scores of n token-major keys (dims channels, dotted with `q` [g][dims]) into
  // sbuf. T = score_tokens() tokens at a time: every channel chunk of the query
  // is loaded once for T tokens, and the g * T partial-product vectors are
  // reduced together (reduce_many). A last partial group repeats token n - 1 and
  // writes scores past n, inside the padded score row (softmax_update pads it).
  void scores_token_major(const QuantFormat& f, int dims, Value* q, Value* n, const TokenPtr& key,
                          const std::function<void(Value* i)>& prefetch = nullptr) {
    const int cw = channel_lanes(f, dims);
    const int T = score_tokens();
    const bool exact = llvm::isa<llvm::ConstantInt>(n) && llvm::cast<llvm::ConstantInt>(n)->getSExtValue() % T == 0;
    Value* last = b_.CreateSub(n, c64(1));
    loop(c64(0), n, T, [&](Value* i) {
      std::vector<Value*> tok;
      for (int t = 0; t < T; ++t) {
        Value* idx = add(i, c64(t));
        if (!exact && t > 0) idx = b_.CreateSelect(b_.CreateICmpSLT(idx, n), idx, last);
        tok.push_back(key(idx));
      }
      if (prefetch)
        for (int t = 0; t < T; ++t) prefetch(add(i, c64(t)));
      std::vector<Value*> acc;  // [h * T + t]
      for (int k = 0; k < g_ * T; ++k) {
        acc.push_back(var(vf(cw), "dot"));
        set(acc.back(), llvm::Constant::getNullValue(vf(cw)));
      }
      loop(c64(0), c64(dims), cw, [&](Value* c) {
        std::vector<Value*> kv;
        for (int t = 0; t < T; ++t) kv.push_back(token_chunk(tok[static_cast<std::size_t>(t)], f, dims, c, cw));
        for (int h = 0; h < g_; ++h) {
          Value* qv = load_v(gep_f(q, add(c, c64(static_cast<std::int64_t>(h) * dims))), cw);
          for (int t = 0; t < T; ++t) {
            Value* a = acc[static_cast<std::size_t>(h * T + t)];
            set(a, fma(qv, kv[static_cast<std::size_t>(t)], get(a, vf(cw))));
          }
        }
      }, T >= 4 ? 1 : 2);
      std::vector<Value*> parts;
      for (Value* a : acc) parts.push_back(get(a, vf(cw)));
      const std::vector<Value*> sums = reduce_many(parts, cw);
      const int run = std::min(T, cw);  // consecutive sums of one head in one vector
      for (int h = 0; h < g_; ++h)
        for (int t = 0; t < T; t += run) {
          const int k = h * T + t;
          std::vector<int> lanes;
          for (int j = 0; j < run; ++j) lanes.push_back(k % cw + j);
          Value* v = sums[static_cast<std::size_t>(k / cw)];
          store_v(run == cw ? v : b_.CreateShuffleVector(v, lanes), gep_f(srow(h), add(i, c64(t))));
        }
    });
  }

  // Scores of the B tokens of a per-channel key section, tokens across lanes:
  // q.k_t = sum_c (q_c s_c) code_ct + sum_c q_c m_c, so the query is scaled once
  // per block and dotted with the raw codes.
  void scores_per_channel(Value* sec, const std::function<void(Value* c)>& prefetch) {
    const QuantFormat& f = s_.key;
    const int row = bt_ * f.bits / 8;
    Value* scales = sec;
    Value* mins = b_.CreateGEP(i16_, sec, c64(kd_));
    Value* codes = gep_b(sec, c64(4LL * kd_));
    const int cw = largest_pow2_lanes(w_, kd_);
    std::vector<Value*> qm;
    for (int h = 0; h < g_; ++h) {
      qm.push_back(var(vf(cw), "qm"));
      set(qm[h], llvm::Constant::getNullValue(vf(cw)));
    }
    loop(c64(0), c64(kd_), cw, [&](Value* c) {
      Value* sv = load_half_v(b_.CreateGEP(i16_, scales, c), cw);
      Value* mv = load_half_v(b_.CreateGEP(i16_, mins, c), cw);
      for (int h = 0; h < g_; ++h) {
        Value* off = add(c, c64(static_cast<std::int64_t>(h) * kd_));
        Value* qv = load_v(gep_f(qk_, off), cw);
        store_v(b_.CreateFMul(qv, sv), gep_f(qsc_, off));
        set(qm[h], fma(qv, mv, get(qm[h], vf(cw))));
      }
    });
    std::vector<Value*> base;
    for (int h = 0; h < g_; ++h) base.push_back(reduce_add(get(qm[h], vf(cw))));
    // nv token vectors per pass over the channels (g * nv accumulators): each
    // broadcast q_c s_c serves nv vectors of tokens.
    const int tw = largest_pow2_lanes(w_, bt_);
    const int nv = largest_pow2_lanes(std::max(1, 16 / g_), bt_ / tw);
    // P interleaved sets of accumulators, one per channel residue mod P, summed at
    // the end: g * nv chains alone (4 for g = 4 at 8 bits) would leave the
    // FMAs waiting on their own latency; 2 FMA pipes x 4 cycles want >= 8 chains.
    int sets = 1;
    while (sets < 4 && kd_ % (sets * 2) == 0 && g_ * nv * sets * 2 <= 16) sets *= 2;
    loop(c64(0), c64(bt_), static_cast<std::int64_t>(tw) * nv, [&](Value* t) {
      std::vector<Value*> acc;  // [(p * g + h) * nv + v]
      for (int p = 0; p < sets; ++p)
        for (int h = 0; h < g_; ++h)
          for (int v = 0; v < nv; ++v) {
            acc.push_back(var(vf(tw), "score"));
            set(acc.back(), p == 0 ? splat(base[h], tw) : llvm::Constant::getNullValue(vf(tw)));
          }
      loop(c64(0), c64(kd_), sets, [&](Value* c0) {
        for (int p = 0; p < sets; ++p) {
          Value* c = add(c0, c64(p));
          if (prefetch) prefetch(c);
          Value* rowp = gep_b(codes, b_.CreateMul(c, c64(row)));
          std::vector<Value*> k;
          for (int v = 0; v < nv; ++v)
            k.push_back(unpack(rowp, add(t, c64(static_cast<std::int64_t>(v) * tw)), tw, f.bits, row));
          for (int h = 0; h < g_; ++h) {
            Value* qsc = splat(load_f(gep_f(qsc_, add(c, c64(static_cast<std::int64_t>(h) * kd_)))), tw);
            for (int v = 0; v < nv; ++v) {
              Value* a = acc[static_cast<std::size_t>((p * g_ + h) * nv + v)];
              set(a, fma(qsc, k[static_cast<std::size_t>(v)], get(a, vf(tw))));
            }
          }
        }
      }, sets >= 2 ? 1 : (nv >= 2 ? 2 : 4));
      for (int h = 0; h < g_; ++h)
        for (int v = 0; v < nv; ++v) {
          Value* sum = get(acc[static_cast<std::size_t>(h * nv + v)], vf(tw));
          for (int p = 1; p < sets; ++p)
            sum = b_.CreateFAdd(sum, get(acc[static_cast<std::size_t>((p * g_ + h) * nv + v)], vf(tw)));
          store_v(sum, gep_f(srow(h), add(t, c64(static_cast<std::int64_t>(v) * tw))));
        }
    });
  }

  // x rounded to the nearest integer, ties to even (as nearbyint), as i32 lanes;
  // x must lie in the i32 range. On AVX-512 one vcvtps2dq with {rn-sae} (rounding
  // fixed in the instruction, whatever MXCSR says) instead of round + convert.
  Value* rint_i32(Value* x, int n) {
    auto* i32v = llvm::FixedVectorType::get(i32_, static_cast<unsigned>(n));
    if (n == 16 && w_ == 16)
      return b_.CreateIntrinsic(llvm::Intrinsic::x86_avx512_mask_cvtps2dq_512, {},
                                {x, llvm::PoisonValue::get(i32v), b_.getInt16(0xffff), b_.getInt32(8)});
    return b_.CreateFPToSI(b_.CreateIntrinsic(llvm::Intrinsic::rint, {vf(n)}, {x}), i32v);
  }

  // ---- int8 dot products on per-channel key codes --------------------------
  // acc + the dot product of each 4-byte lane of `codes` (unsigned) with the same
  // lane of `q` (signed): vpdpbusd, or the same sum in plain integer IR.
  Value* dot4(Value* acc, Value* codes, Value* q) {
    auto* i32x16 = llvm::FixedVectorType::get(i32_, 16);
    if (use_vnni_)
      return b_.CreateIntrinsic(llvm::Intrinsic::x86_avx512_vpdpbusd_512, {},
                                {acc, b_.CreateBitCast(codes, i32x16), b_.CreateBitCast(q, i32x16)});
    auto* i32x64 = llvm::FixedVectorType::get(i32_, 64);
    Value* prod = b_.CreateMul(b_.CreateZExt(codes, i32x64), b_.CreateSExt(q, i32x64), "", false, true);
    Value* sum = acc;
    for (int k = 0; k < 4; ++k) {
      std::vector<int> lanes;
      for (int j = 0; j < 16; ++j) lanes.push_back(4 * j + k);
      sum = b_.CreateAdd(sum, b_.CreateShuffleVector(prod, lanes));
    }
    return sum;
  }

  Value* concat(Value* a, Value* x) {
    const int n = static_cast<int>(llvm::cast<llvm::FixedVectorType>(a->getType())->getNumElements());
    std::vector<int> lanes;
    for (int i = 0; i < 2 * n; ++i) lanes.push_back(i);
    return b_.CreateShuffleVector(a, x, lanes);
  }
  // The vectors end to end (a power-of-two count of equal vectors), by a tree of concats.
  Value* concat_all(std::vector<Value*> parts) {
    while (parts.size() > 1) {
      std::vector<Value*> next;
      for (std::size_t i = 0; i < parts.size(); i += 2) next.push_back(concat(parts[i], parts[i + 1]));
      parts = std::move(next);
    }
    return parts[0];
  }

  // The 4 channel rows at `rows` (each `row` bytes, back to back in the block) in
  // one load: every tile of the quad is then a byte shuffle of this vector (one
  // vpermb / vpermt2b), not 4 narrow loads and inserts per tile.
  Value* quad_rows(Value* rows, int row) {
    auto* t = llvm::FixedVectorType::get(i8_, static_cast<unsigned>(4 * row));
    return b_.CreateAlignedLoad(t, rows, llvm::Align(1));
  }

  // The codes of tokens [16 tv, 16 tv + 16) of the quad `all` (quad_rows; channel k
  // at byte k * row), transposed to what vpdpbusd wants: byte 4j+k = the code of
  // token 16 tv + j in channel k, as <64 x i8>. A 16-token slice of a row starts on
  // a byte and token j's code sits (j bits) % 8 bits into its byte, the same shift
  // for all 4 bytes of lane j, so one dword shift and a byte mask finish it.
  Value* transposed_codes(Value* all, int row, int tv, int bits) {
    const int nb = 16 * bits / 8;
    std::vector<int> pick;
    std::vector<std::uint32_t> shifts;
    for (int j = 0; j < 16; ++j) {
      for (int k = 0; k < 4; ++k) pick.push_back(k * row + tv * nb + j * bits / 8);
      shifts.push_back(static_cast<std::uint32_t>(j * bits % 8));
    }
    Value* bytes = b_.CreateShuffleVector(all, pick);
    if (bits == 8) return bytes;
    auto* i32x16 = llvm::FixedVectorType::get(i32_, 16);
    const std::uint32_t mask = ((1u << bits) - 1) * 0x01010101u;
    Value* words = b_.CreateLShr(b_.CreateBitCast(bytes, i32x16), llvm::ConstantDataVector::get(ctx_, shifts));
    words = b_.CreateAnd(words, b_.CreateVectorSplat(16, b_.getInt32(mask)));
    return b_.CreateBitCast(words, llvm::FixedVectorType::get(i8_, 64));
  }

  // Scores of a per-channel key block through int8 dot products (KernelSpec::int8_dot):
  // per head, x_c = qs_c * s_c is quantized to qi_c = rint(x_c * 127 / max|x|), so
  // q.k_t ~= (max|x| / 127) * sum_c qi_c code_ct + sum_c qs_c m_c.
  void scores_per_channel_int8(Value* sec) {
    const int bits = s_.key.bits;
    const int row = bt_ * bits / 8;
    Value* scales = sec;
    Value* mins = b_.CreateGEP(i16_, sec, c64(kd_));
    Value* codes = gep_b(sec, c64(4LL * kd_));
    const int cw = largest_pow2_lanes(w_, kd_);
    auto* i8v = llvm::FixedVectorType::get(i8_, static_cast<unsigned>(cw));
    // One pass over the channels for all heads: each chunk of the block's scales
    // and mins is loaded and widened once and used by every head.
    std::vector<Value*> amax, qm;
    for (int h = 0; h < g_; ++h) {
      amax.push_back(var(vf(cw), "amax"));
      qm.push_back(var(vf(cw), "qm"));
      set(amax.back(), llvm::Constant::getNullValue(vf(cw)));
      set(qm.back(), llvm::Constant::getNullValue(vf(cw)));
    }
    loop(c64(0), c64(kd_), cw, [&](Value* c) {
      Value* sv = load_half_v(b_.CreateGEP(i16_, scales, c), cw);
      Value* mv = load_half_v(b_.CreateGEP(i16_, mins, c), cw);
      for (int h = 0; h < g_; ++h) {
        const auto hs = static_cast<std::size_t>(h);
        Value* at = add(c, c64(static_cast<std::int64_t>(h) * kd_));
        Value* qv = load_v(gep_f(qk_, at), cw);
        Value* x;
        {
          llvm::IRBuilderBase::FastMathFlagGuard exact(b_);
          b_.clearFastMathFlags();
          x = b_.CreateFMul(qv, sv);
        }
        store_v(x, gep_f(qsc_, at));
        set(amax[hs], fmax(get(amax[hs], vf(cw)), b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
        set(qm[hs], fma(qv, mv, get(qm[hs], vf(cw))));
      }
    });
    std::vector<Value*> step, inv, amaxes, qms;
    for (int h = 0; h < g_; ++h) {
      amaxes.push_back(get(amax[static_cast<std::size_t>(h)], vf(cw)));
      qms.push_back(get(qm[static_cast<std::size_t>(h)], vf(cw)));
    }
    const std::vector<Value*> base = reduce_all(qms, false);
    const std::vector<Value*> mxs = reduce_all(amaxes, true);
    {
      // All heads' 127 / max|x| and max|x| / 127 by one vector division each.
      llvm::IRBuilderBase::FastMathFlagGuard exact(b_);
      b_.clearFastMathFlags();
      Value* mx = llvm::PoisonValue::get(vf(g_));
      for (int h = 0; h < g_; ++h) mx = b_.CreateInsertElement(mx, mxs[static_cast<std::size_t>(h)], static_cast<std::uint64_t>(h));
      Value* zero = llvm::Constant::getNullValue(vf(g_));
      Value* invs = b_.CreateSelect(b_.CreateFCmpOGT(mx, zero), b_.CreateFDiv(splat(cf(127), g_), mx), zero);
      Value* steps = b_.CreateFDiv(mx, splat(cf(127), g_));
      for (int h = 0; h < g_; ++h) {
        inv.push_back(b_.CreateExtractElement(invs, static_cast<std::uint64_t>(h)));
        step.push_back(b_.CreateExtractElement(steps, static_cast<std::uint64_t>(h)));
      }
    }
    loop(c64(0), c64(kd_), cw, [&](Value* c) {
      for (int h = 0; h < g_; ++h) {
        const auto hs = static_cast<std::size_t>(h);
        Value* at = add(c, c64(static_cast<std::int64_t>(h) * kd_));
        Value* x;
        {
          llvm::IRBuilderBase::FastMathFlagGuard exact(b_);
          b_.clearFastMathFlags();
          x = b_.CreateFMul(load_v(gep_f(qsc_, at), cw), splat(inv[hs], cw));
        }
        // |x| <= 127 up to an ulp of inv, so rounding to the nearest integer
        // already lands in [-127, 127]: no clamp.
        b_.CreateAlignedStore(b_.CreateTrunc(rint_i32(x, cw), i8v), gep_b(qi_, at), llvm::Align(1));
      }
    });
    const int nt = bt_ / 16;
    auto* i32x16 = llvm::FixedVectorType::get(i32_, 16);
    std::vector<Value*> acc;
    for (int i = 0; i < g_ * nt; ++i) {
      acc.push_back(var(i32x16, "idot"));
      set(acc.back(), llvm::Constant::getNullValue(i32x16));
    }
    loop(c64(0), c64(kd_ / 4), 1, [&](Value* quad) {
      Value* rows = gep_b(codes, b_.CreateMul(quad, c64(4LL * row)));
      Value* all = quad_rows(rows, row);
      std::vector<Value*> cv;
      for (int tv = 0; tv < nt; ++tv) cv.push_back(transposed_codes(all, row, tv, bits));
      for (int h = 0; h < g_; ++h) {
        Value* qd = b_.CreateAlignedLoad(i32_, gep_b(qi_, add(b_.CreateMul(quad, c64(4)), c64(static_cast<std::int64_t>(h) * kd_))),
                                         llvm::Align(1));
        Value* qv = b_.CreateBitCast(b_.CreateVectorSplat(16, qd), llvm::FixedVectorType::get(i8_, 64));
        for (int tv = 0; tv < nt; ++tv) {
          Value* a = acc[static_cast<std::size_t>(h * nt + tv)];
          set(a, dot4(get(a, i32x16), cv[static_cast<std::size_t>(tv)], qv));
        }
      }
    }, 2);
    for (int h = 0; h < g_; ++h)
      for (int tv = 0; tv < nt; ++tv) {
        Value* dots = b_.CreateSIToFP(get(acc[static_cast<std::size_t>(h * nt + tv)], i32x16), vf(16));
        store_v(fma(splat(step[static_cast<std::size_t>(h)], 16), dots, splat(base[static_cast<std::size_t>(h)], 16)),
                gep_f(srow(h), c64(16LL * tv)));
      }
  }

  // ---- int8 dot products on per-token value codes --------------------------
  // How a block's value codes are tiled for vpdpbusd. A tile is one chunk of cb
  // code bytes (inside one group) of tq = 64 / cb tokens, transposed so that
  // dword dd (quad qo = dd / cb, byte p = dd % cb) holds byte p of tokens
  // 4 qo .. 4 qo + 3 of the tile: the 4 tokens vpdpbusd sums. Extraction e (the
  // codes at bit e * bits of each byte, E = 8 / bits per byte) of a tile puts
  // channel chunk * cb * E + p * E + e in dword dd: a fixed permutation of the
  // channels, undone once per call by fold_int8_values.
  struct ValueTiles {
    int bits, E, groups, group_bytes, cb, tq, chunks;
    int vectors() const { return chunks * E; }
    int group_of_chunk(int j) const { return j * cb / group_bytes; }
    int channel(int j, int e, int p) const { return j * cb * E + p * E + e; }
  };
  ValueTiles value_tiles() const {
    ValueTiles t{};
    t.bits = s_.value.bits;
    t.E = 8 / t.bits;
    t.groups = d_ / s_.value.group;
    t.group_bytes = s_.value.group * t.bits / 8;
    t.cb = std::min(16, t.group_bytes);
    t.tq = 64 / t.cb;
    t.chunks = d_ * t.bits / 8 / t.cb;
    return t;
  }

  void zero_floats(Value* p, std::int64_t n) {
    loop(c64(0), c64(n), 1, [&](Value* i) { store_f(cf(0), gep_f(p, i)); });
  }
  // n is a multiple of 16 (whole lane-wise sums).
  void scale_floats(Value* p, std::int64_t n, Value* by) {
    loop(c64(0), c64(n), 16, [&](Value* i) { store_v(b_.CreateFMul(load_v(gep_f(p, i), 16), splat(by, 16)), gep_f(p, i)); });
  }

  void init_int8_values() {
    const ValueTiles t = value_tiles();
    zero_floats(vsums_, static_cast<std::int64_t>(g_) * t.vectors() * 16);
    zero_floats(vmins_, static_cast<std::int64_t>(g_) * t.groups * 16);
  }

  // The weights of tokens [tok0, tok0 + tq) of head h and group gr laid out as the
  // tiles want them: dword dd = the 4 weights of quad dd / cb.
  Value* tile_weights(int h, int gr, Value* tok0, const ValueTiles& t) {
    Value* p = gep_b(vweights_, add(tok0, c64((static_cast<std::int64_t>(h) * t.groups + gr) * bt_)));
    const int nq = t.tq / 4;
    Value* w;
    if (nq == 1) {
      w = b_.CreateVectorSplat(16, b_.CreateAlignedLoad(i32_, p, llvm::Align(1)));
    } else {
      Value* quads = b_.CreateAlignedLoad(llvm::FixedVectorType::get(i32_, static_cast<unsigned>(nq)), p, llvm::Align(1));
      std::vector<int> lanes;
      for (int dd = 0; dd < 16; ++dd) lanes.push_back(dd / t.cb);
      w = b_.CreateShuffleVector(quads, lanes);
    }
    return b_.CreateBitCast(w, llvm::FixedVectorType::get(i8_, 64));
  }

  // Whether a block's tiles are built up front (build_value_tiles) rather than
  // gathered in the passes (value_tile). Up front, per step the tq tokens' code
  // rows are loaded whole and each tile is one shuffle of them; the passes then
  // load a tile with one instruction. That pays where a tile is 8 pieces of 8
  // bytes (about fifteen instructions to gather: compute/ K2V2+i8 306 -> 270 us,
  // K4V2+i8 304 -> 272). For 16-byte pieces (4-bit and 8-bit values at group
  // 32) gathering is cheap, and reading a whole 9 KB K8V8 block up front slowed
  // its kernel from DRAM (AOT, 1 thread: 2.13 -> 2.49 s per 20000 calls).
  static bool tiles_up_front(const ValueTiles& t) { return t.cb < 16; }

  // The tile of chunk j for tokens [tok0, tok0 + tq) of a value section (see ValueTiles).
  Value* value_tile(Value* codes, Value* tok0, int j, const ValueTiles& t) {
    const std::int64_t v_tok = token_bytes(s_.value, d_);
    auto* piece_ty = llvm::FixedVectorType::get(i8_, static_cast<unsigned>(t.cb));
    std::vector<Value*> pieces;
    for (int k = 0; k < t.tq; ++k) {
      Value* off = add(b_.CreateMul(add(tok0, c64(k)), c64(v_tok)), c64(static_cast<std::int64_t>(j) * t.cb));
      pieces.push_back(b_.CreateAlignedLoad(piece_ty, gep_b(codes, off), llvm::Align(1)));
    }
    return b_.CreateShuffleVector(concat_all(std::move(pieces)), tile_pick(t.cb, 0, t));
  }

  // The byte order of a tile (see ValueTiles) within tq token rows of `row` bytes
  // each, for chunk j at byte first of a row.
  std::vector<int> tile_pick(int row, int first, const ValueTiles& t) {
    std::vector<int> pick;
    for (int dd = 0; dd < 16; ++dd)
      for (int k = 0; k < 4; ++k) pick.push_back((4 * (dd / t.cb) + k) * row + first + dd % t.cb);
    return pick;
  }

  // Where tile (step st, chunk j) of the block lies in vtiles_ (see tiles_up_front).
  Value* up_front_tile(Value* st, int j, const ValueTiles& t) {
    return gep_b(vtiles_, add(b_.CreateMul(st, c64(64LL * t.chunks)), c64(64LL * j)));
  }

  // Every tile of a block's value section into vtiles_ (see tiles_up_front).
  void build_value_tiles(Value* codes, const ValueTiles& t) {
    const std::int64_t v_tok = token_bytes(s_.value, d_);
    const int row = d_ * t.bits / 8;
    auto* row_ty = llvm::FixedVectorType::get(i8_, static_cast<unsigned>(row));
    loop(c64(0), c64(bt_ / t.tq), 1, [&](Value* st) {
      Value* tok0 = b_.CreateMul(st, c64(t.tq));
      std::vector<Value*> rows;
      for (int k = 0; k < t.tq; ++k)
        rows.push_back(b_.CreateAlignedLoad(row_ty, gep_b(codes, b_.CreateMul(add(tok0, c64(k)), c64(v_tok))), llvm::Align(1)));
      Value* all = concat_all(std::move(rows));
      for (int j = 0; j < t.chunks; ++j)
        b_.CreateAlignedStore(b_.CreateShuffleVector(all, tile_pick(row, j * t.cb, t)), up_front_tile(st, j, t),
                              llvm::Align(64));
    });
  }

  // One per-token value block through int8 dot products (KernelSpec::int8_dot; the
  // definition is backends/reference/int8_dot_attention.h). Per group, A = the
  // block's largest scale (shared by all heads). Per head: the block's own softmax
  // r_t = exp(score_t - M) (M the block's max), the online update of m, l and the
  // block sums by M; per group the weights r_t s_t are quantized to
  // u_t = rint(r_t s_t * W / A) (W = 255, 127 for 8-bit codes whose bytes must be
  // vpdpbusd's unsigned operand), then vsums += beta step sum_t u_t code_t and the
  // lane-wise vmins += beta (r_t min_t + z (r_t s_t - step u_t)), beta = exp(M - m),
  // z the middle code: the rounding then errs on centred codes.
  // `prefetch(slot, slots)` runs once per step of the integer loops.
  void values_int8_block(Value* vsec, Value* m, Value* l,
                         const std::function<void(Value* slot, std::int64_t slots)>& prefetch) {
    const ValueTiles t = value_tiles();
    const std::int64_t v_tok = token_bytes(s_.value, d_);
    auto* i32x16 = llvm::FixedVectorType::get(i32_, 16);
    auto* i16x16 = llvm::FixedVectorType::get(i16_, 16);
    auto* f16x16 = llvm::FixedVectorType::get(f16_, 16);
    auto* i8x16 = llvm::FixedVectorType::get(i8_, 16);
    // Scales and mins of the block's tokens, tokens across lanes: header dword j
    // of 16 tokens at once holds halves 2j and 2j + 1 (scales, then mins). The 16
    // headers are loaded whole and transposed by shuffles (a gather costs a
    // load per lane and is slow on every x86 this runs on).
    auto* header_ty = llvm::FixedVectorType::get(i32_, static_cast<unsigned>(t.groups));
    loop(c64(0), c64(bt_), 16, [&](Value* t0) {
      Value* base = b_.CreateMul(t0, c64(v_tok));
      auto header = [&](int k) { return b_.CreateAlignedLoad(header_ty, gep_b(vsec, add(base, c64(k * v_tok))), llvm::Align(1)); };
      std::vector<Value*> group_words;  // [group]: dword of tokens t0 .. t0 + 15
      if (t.groups == 4) {
        // Four headers of 128 bits per vector, vector r holding tokens r, 4 + r,
        // 8 + r, 12 + r; a 4 x 4 dword transpose inside each 128-bit lane (two
        // rounds of unpacks) then leaves group j's dwords in token order in vector j.
        std::vector<Value*> z;
        for (int r = 0; r < 4; ++r) z.push_back(concat_all({header(r), header(4 + r), header(8 + r), header(12 + r)}));
        auto unpack = [&](Value* a, Value* x, int width, bool high) {  // vpunpck{l,h}{dq,qdq} per 128-bit lane
          std::vector<int> lanes;
          for (int lane = 0; lane < 4; ++lane)
            for (int i = 0; i < 4; ++i) {  // element blocks of `width` dwords alternate a, x
              const int blk = i / width;
              const int elem = (blk / 2) * width + i % width + (high ? 2 : 0);
              lanes.push_back(lane * 4 + elem + (blk % 2) * 16);
            }
          return b_.CreateShuffleVector(a, x, lanes);
        };
        Value* lo01 = unpack(z[0], z[1], 1, false);
        Value* hi01 = unpack(z[0], z[1], 1, true);
        Value* lo23 = unpack(z[2], z[3], 1, false);
        Value* hi23 = unpack(z[2], z[3], 1, true);
        group_words = {unpack(lo01, lo23, 2, false), unpack(lo01, lo23, 2, true), unpack(hi01, hi23, 2, false),
                       unpack(hi01, hi23, 2, true)};
      } else {
        std::vector<Value*> headers;
        for (int k = 0; k < 16; ++k) headers.push_back(header(k));
        Value* all = concat_all(std::move(headers));
        for (int j = 0; j < t.groups; ++j) {
          std::vector<int> lanes;
          for (int k = 0; k < 16; ++k) lanes.push_back(k * t.groups + j);
          group_words.push_back(b_.CreateShuffleVector(all, lanes));
        }
      }
      for (int j = 0; j < t.groups; ++j) {
        Value* words = group_words[static_cast<std::size_t>(j)];
        Value* halves[2] = {b_.CreateTrunc(words, i16x16),
                            b_.CreateTrunc(b_.CreateLShr(words, b_.CreateVectorSplat(16, b_.getInt32(16))), i16x16)};
        for (int k = 0; k < 2; ++k)
          store_v(b_.CreateFPExt(b_.CreateBitCast(halves[k], f16x16), vf(16)),
                  gep_f(vhdr_, add(t0, c64((2LL * j + k) * bt_))));
      }
    });
    const float top_weight = t.bits == 8 ? 127.0f : 255.0f;
    const float mid = 0.5f * static_cast<float>((1 << t.bits) - 1);
    // Per group, A = the block's largest scale, which bounds every weight r_t s_t
    // (r_t <= 1): one quantization step per block and group, for all heads. The
    // header rows then become what every head multiplies: scale s_t into
    // w_t = s_t * (W / A) (the weight rounded is r_t w_t) and min m_t into
    // m_t + z s_t (the lane sums need r_t (m_t + z s_t) - z step u_t).
    std::vector<Value*> smaxes;
    for (int j = 0; j < t.groups; ++j) {
      Value* scales = gep_f(vhdr_, c64(static_cast<std::int64_t>(j) * bt_));
      Value* smax = load_v(scales, 16);
      for (int i = 16; i < bt_; i += 16) smax = fmax(smax, load_v(gep_f(scales, c64(i)), 16));
      smaxes.push_back(smax);
    }
    const std::vector<Value*> largest_scales = reduce_all(smaxes, true);
    for (int j = 0; j < t.groups; ++j) {
      Value* scales = gep_f(vhdr_, c64(static_cast<std::int64_t>(j) * bt_));
      Value* mins = gep_f(vhdr_, c64(static_cast<std::int64_t>(t.groups + j) * bt_));
      Value* inv;
      {
        llvm::IRBuilderBase::FastMathFlagGuard exact(b_);
        b_.clearFastMathFlags();
        Value* a = largest_scales[static_cast<std::size_t>(j)];
        inv = b_.CreateSelect(b_.CreateFCmpOGT(a, cf(0)), b_.CreateFDiv(cf(top_weight), a), cf(0));
        store_f(b_.CreateFDiv(a, cf(top_weight)), gep_f(vblock_steps_, c64(j)));
      }
      for (int i = 0; i < bt_; i += 16) {
        Value* sv = load_v(gep_f(scales, c64(i)), 16);
        store_v(fma(splat(cf(mid), 16), sv, load_v(gep_f(mins, c64(i)), 16)), gep_f(mins, c64(i)));
        llvm::IRBuilderBase::FastMathFlagGuard exact(b_);
        b_.clearFastMathFlags();
        store_v(b_.CreateFMul(sv, splat(inv, 16)), gep_f(scales, c64(i)));
      }
    }
    const std::int64_t sums_per_head = static_cast<std::int64_t>(t.vectors()) * 16;
    // The heads' block maxima first, then one branch for all heads: the rescale
    // of a head's sums when its maximum grows is rare over a long context, and
    // without a branch per head the per-head chains below (exp, weight rounding)
    // sit in one basic block, where the scheduler and the CPU overlap them.
    std::vector<Value*> row_maxima, m_old, m_new;
    for (int h = 0; h < g_; ++h) {
      Value* row = srow(h);
      Value* mx = load_v(row, 16);
      for (int i = 16; i < bt_; i += 16) mx = fmax(mx, load_v(gep_f(row, c64(i)), 16));
      row_maxima.push_back(mx);
    }
    const std::vector<Value*> bmax = reduce_all(row_maxima, true);
    Value* grew = b_.getFalse();
    for (int h = 0; h < g_; ++h) {
      m_old.push_back(load_f(m_at(m, h)));
      m_new.push_back(fmax(m_old.back(), bmax.back()));
      grew = b_.CreateOr(grew, b_.CreateFCmpOGT(m_new.back(), m_old.back()));
    }
    if_true(grew, [&] {
      for (int h = 0; h < g_; ++h)
        if_true(b_.CreateFCmpOGT(m_new[static_cast<std::size_t>(h)], m_old[static_cast<std::size_t>(h)]), [&] {
          Value* alpha = exp_v(b_.CreateFSub(m_old[static_cast<std::size_t>(h)], m_new[static_cast<std::size_t>(h)]));
          store_f(b_.CreateFMul(load_f(m_at(l, h)), alpha), m_at(l, h));
          scale_floats(gep_f(vsums_, c64(h * sums_per_head)), sums_per_head, alpha);
          scale_floats(gep_f(vmins_, c64(static_cast<std::int64_t>(h) * t.groups * 16)), t.groups * 16, alpha);
        });
    });
    // Every head's factor beta = exp(M - m) by one vector exp (a scalar exp per
    // head is a chain of a dozen dependent operations).
    Value* gaps = llvm::PoisonValue::get(vf(g_));
    for (int h = 0; h < g_; ++h)
      gaps = b_.CreateInsertElement(gaps, b_.CreateFSub(bmax[static_cast<std::size_t>(h)], m_new[static_cast<std::size_t>(h)]),
                                    static_cast<std::uint64_t>(h));
    Value* betas = exp_v(gaps);
    // The block's own softmax r_t = exp(score_t - M) of every head, then every
    // head's l += beta sum_t r_t (the heads' sums reduced together).
    std::vector<Value*> rsums;
    for (int hi = 0; hi < g_; ++hi) {
      const auto hs = static_cast<std::size_t>(hi);
      Value* row = srow(hi);
      store_f(m_new[hs], m_at(m, hi));
      Value* rsum = var(vf(16), "r_sum");
      set(rsum, llvm::Constant::getNullValue(vf(16)));
      loop(c64(0), c64(bt_), 16, [&](Value* i) {
        Value* r = exp_v(b_.CreateFSub(load_v(gep_f(row, i), 16), splat(bmax[hs], 16)));
        store_v(r, gep_f(row, i));
        set(rsum, b_.CreateFAdd(get(rsum, vf(16)), r));
      }, bt_ / 16);
      rsums.push_back(get(rsum, vf(16)));
    }
    const std::vector<Value*> block_sums = reduce_all(rsums, false);
    for (int hi = 0; hi < g_; ++hi) {  // the heads side by side (see unrolled_heads)
      const auto hs = static_cast<std::size_t>(hi);
      Value* h = c64(hi);
      Value* row = srow(hi);
      Value* beta = b_.CreateExtractElement(betas, static_cast<std::uint64_t>(hi));
      store_f(fma(beta, block_sums[hs], load_f(gep_f(l, h))), gep_f(l, h));
      // The groups in straight-line code (constant offsets, no loop bookkeeping)
      // unless there are many of them: this per-head, per-group work is a large
      // share of a block's instructions at head_dim 128.
      for_groups(t.groups, [&](Value* gr) {
        Value* wrow = gep_f(vhdr_, b_.CreateMul(gr, c64(bt_)));
        Value* mrow = gep_f(vhdr_, b_.CreateMul(add(gr, c64(t.groups)), c64(bt_)));
        Value* weights = gep_b(vweights_, b_.CreateMul(add(b_.CreateMul(h, c64(t.groups)), gr), c64(bt_)));
        Value* step = load_f(gep_f(vblock_steps_, gr));
        // Lane-wise sums over the block's tokens of r_t (m_t + z s_t) and of u_t:
        // the group's share of every channel is their difference
        // sum r_t (m_t + z s_t) - z step sum u_t (codes measured from the middle one z).
        Value* msum = var(vf(16), "min_sum");
        Value* usum = var(i32x16, "u_sum");
        set(msum, llvm::Constant::getNullValue(vf(16)));
        set(usum, llvm::Constant::getNullValue(i32x16));
        loop(c64(0), c64(bt_), 16, [&](Value* i) {
          Value* r = load_v(gep_f(row, i), 16);
          Value* x;
          {
            // r_t * w_t is a plain IEEE product (no contraction): the reference
            // rounds exactly this.
            llvm::IRBuilderBase::FastMathFlagGuard exact(b_);
            b_.clearFastMathFlags();
            x = b_.CreateFMul(r, load_v(gep_f(wrow, i), 16));
          }
          // No clamp to [0, W] as the reference has: r_t in [0, 1] and 0 <= w_t <= W
          // up to an ulp, so x is at most W a few ulps over, never W + 1/2, and
          // never negative: rounding already lands in [0, W].
          Value* u = rint_i32(x, 16);
          b_.CreateAlignedStore(b_.CreateTrunc(u, i8x16), gep_b(weights, i), llvm::Align(1));
          set(usum, b_.CreateAdd(get(usum, i32x16), u));
          set(msum, fma(r, load_v(gep_f(mrow, i), 16), get(msum, vf(16))));
        }, bt_ / 16);
        Value* hg = add(b_.CreateMul(h, c64(t.groups)), gr);
        Value* dst = gep_f(vmins_, b_.CreateMul(hg, c64(16)));
        Value* share = fma(splat(b_.CreateFMul(cf(-mid), step), 16), b_.CreateSIToFP(get(usum, i32x16), vf(16)), get(msum, vf(16)));
        store_v(fma(splat(beta, 16), share, load_v(dst, 16)), dst);
        store_f(b_.CreateFMul(beta, step), gep_f(vsteps_, hg));
      });
    }
    // The integer dot products: passes over cpp chunks x epp extractions, g * cpp *
    // epp accumulators (about 16 vector registers), each tile loaded and
    // transposed once per pass and used by every head.
    int cpp = 1, epp = 1;
    if (g_ * t.E <= 16) {
      epp = t.E;
      cpp = largest_pow2_lanes(std::max(1, 16 / (g_ * t.E)), t.chunks);
    } else {
      epp = largest_pow2_lanes(std::max(1, 16 / g_), t.E);
    }
    const int steps = bt_ / t.tq;
    const std::int64_t slots = static_cast<std::int64_t>(t.chunks / cpp) * (t.E / epp) * steps;
    Value* codes = gep_b(vsec, c64(4LL * t.groups));
    if (tiles_up_front(t)) build_value_tiles(codes, t);
    const std::uint32_t code_mask = ((1u << t.bits) - 1) * 0x01010101u;
    int pass = 0;
    for (int c0 = 0; c0 < t.chunks; c0 += cpp)
      for (int e0 = 0; e0 < t.E; e0 += epp, ++pass) {
        std::vector<Value*> acc;  // [(h * cpp + ci) * epp + ei]
        for (int k = 0; k < g_ * cpp * epp; ++k) {
          acc.push_back(var(i32x16, "vdot"));
          set(acc.back(), llvm::Constant::getNullValue(i32x16));
        }
        loop(c64(0), c64(steps), 1, [&](Value* st) {
          if (prefetch) prefetch(add(st, c64(static_cast<std::int64_t>(pass) * steps)), slots);
          Value* tok0 = b_.CreateMul(st, c64(t.tq));
          for (int ci = 0; ci < cpp; ++ci) {
            const int j = c0 + ci;
            Value* tile = tiles_up_front(t) ? b_.CreateAlignedLoad(llvm::FixedVectorType::get(i8_, 64),
                                                                   up_front_tile(st, j, t), llvm::Align(64))
                                            : value_tile(codes, tok0, j, t);
            std::vector<Value*> w;
            for (int h = 0; h < g_; ++h) w.push_back(tile_weights(h, t.group_of_chunk(j), tok0, t));
            for (int ei = 0; ei < epp; ++ei) {
              Value* x = tile;
              if (t.bits < 8) {
                Value* words = b_.CreateLShr(b_.CreateBitCast(tile, i32x16), b_.CreateVectorSplat(16, b_.getInt32(static_cast<std::uint32_t>((e0 + ei) * t.bits))));
                words = b_.CreateAnd(words, b_.CreateVectorSplat(16, b_.getInt32(code_mask)));
                x = b_.CreateBitCast(words, llvm::FixedVectorType::get(i8_, 64));
              }
              for (int h = 0; h < g_; ++h) {
                Value* a = acc[static_cast<std::size_t>((h * cpp + ci) * epp + ei)];
                // vpdpbusd's first operand is unsigned: the weights, or 8-bit codes (then weights <= 127).
                set(a, t.bits == 8 ? dot4(get(a, i32x16), x, w[static_cast<std::size_t>(h)])
                                   : dot4(get(a, i32x16), w[static_cast<std::size_t>(h)], x));
              }
            }
          }
        });
        for (int h = 0; h < g_; ++h)
          for (int ci = 0; ci < cpp; ++ci) {
            const int j = c0 + ci;
            Value* step = load_f(gep_f(vsteps_, c64(static_cast<std::int64_t>(h) * t.groups + t.group_of_chunk(j))));
            for (int ei = 0; ei < epp; ++ei) {
              const std::int64_t vec = static_cast<std::int64_t>(h) * t.vectors() + j * t.E + e0 + ei;
              Value* p = gep_f(vsums_, c64(vec * 16));
              Value* dots = b_.CreateSIToFP(get(acc[static_cast<std::size_t>((h * cpp + ci) * epp + ei)], i32x16), vf(16));
              store_v(fma(splat(step, 16), dots, load_v(p, 16)), p);
            }
          }
      }
  }

  // acc[h][c] += the block sums of channel c (undoing the tile permutation and
  // adding the quads of a tile that hold the same channels) + its group's min sum.
  void fold_int8_values(Value* acc) {
    const ValueTiles t = value_tiles();
    loop(c64(0), c64(g_), 1, [&](Value* h) {
      Value* arow = gep_f(acc, b_.CreateMul(h, c64(d_)));
      Value* sums = gep_f(vsums_, b_.CreateMul(h, c64(static_cast<std::int64_t>(t.vectors()) * 16)));
      for (int j = 0; j < t.chunks; ++j)
        for (int e = 0; e < t.E; ++e) {
          Value* v = load_v(gep_f(sums, c64((static_cast<std::int64_t>(j) * t.E + e) * 16)), 16);
          Value* sum = nullptr;
          for (int qo = 0; qo < 16 / t.cb; ++qo) {
            std::vector<int> lanes;
            for (int p = 0; p < t.cb; ++p) lanes.push_back(qo * t.cb + p);
            Value* part = b_.CreateShuffleVector(v, lanes);
            sum = sum ? b_.CreateFAdd(sum, part) : part;
          }
          for (int p = 0; p < t.cb; ++p) {
            Value* dst = gep_f(arow, c64(t.channel(j, e, p)));
            store_f(b_.CreateFAdd(load_f(dst), b_.CreateExtractElement(sum, static_cast<std::uint64_t>(p))), dst);
          }
        }
      Value* mins = gep_f(vmins_, b_.CreateMul(h, c64(t.groups * 16)));
      loop(c64(0), c64(t.groups), 1, [&](Value* gr) {
        Value* min = reduce_add(load_v(gep_f(mins, b_.CreateMul(gr, c64(16))), 16));
        Value* first = b_.CreateMul(gr, c64(s_.value.group));
        loop(c64(0), c64(s_.value.group), 1, [&](Value* c) {
          Value* dst = gep_f(arow, add(first, c));
          store_f(b_.CreateFAdd(load_f(dst), min), dst);
        });
      });
    });
  }

  // Online softmax over the n scores in sbuf: updates m and l, rescales acc, and
  // leaves exp(score - m) in sbuf. n_const >= 0 when n is a compile-time constant.
  void softmax_update(Value* n, int n_const, Value* m, Value* l, Value* acc) {
    Value* nw = n_const >= 0 ? static_cast<Value*>(c64(round_up(n_const, w_)))
                             : b_.CreateMul(b_.CreateUDiv(add(n, c64(w_ - 1)), c64(w_)), c64(w_));
    const bool pad = n_const < 0 || n_const % w_ != 0;
    unrolled_heads([&](Value* h) {
      Value* row = gep_f(sbuf_, b_.CreateMul(h, c64(sbuf_stride_)));
      if (pad)
        loop(n, nw, 1, [&](Value* t) { store_f(cf(-std::numeric_limits<float>::infinity()), gep_f(row, t)); });
      Value* mx = var(vf(w_), "max");
      set(mx, splat(cf(-std::numeric_limits<float>::infinity()), w_));
      loop(c64(0), nw, w_, [&](Value* t) { set(mx, fmax(get(mx, vf(w_)), load_v(gep_f(row, t), w_))); });
      Value* m_old = load_f(gep_f(m, h));
      Value* m_new = fmax(m_old, reduce_max(get(mx, vf(w_))));
      Value* sum = var(vf(w_), "sum");
      set(sum, llvm::Constant::getNullValue(vf(w_)));
      loop(c64(0), nw, w_, [&](Value* t) {
        Value* p = gep_f(row, t);
        Value* e = exp_v(b_.CreateFSub(load_v(p, w_), splat(m_new, w_)));
        store_v(e, p);
        set(sum, b_.CreateFAdd(get(sum, vf(w_)), e));
      });
      // Rescale l and acc by alpha = exp(m_old - m_new) only when the maximum
      // grew: otherwise alpha is exactly 1 (exp_v(0) == 1), and over a long
      // context the maximum rarely moves.
      if_true(b_.CreateFCmpOGT(m_new, m_old), [&] {
        Value* alpha = exp_v(b_.CreateFSub(m_old, m_new));
        store_f(b_.CreateFMul(load_f(gep_f(l, h)), alpha), gep_f(l, h));
        const int cw = largest_pow2_lanes(w_, d_);
        Value* arow = gep_f(acc, b_.CreateMul(h, c64(d_)));
        loop(c64(0), c64(d_), cw, [&](Value* c) {
          Value* p = gep_f(arow, c);
          store_v(b_.CreateFMul(load_v(p, cw), splat(alpha, cw)), p);
        });
      });
      store_f(b_.CreateFAdd(load_f(gep_f(l, h)), reduce_add(get(sum, vf(w_)))), gep_f(l, h));
      store_f(m_new, gep_f(m, h));
    });
  }

  // acc[h] += sum_i p[h][i] v_i over n token-major values. Channels in blocks of
  // cb chunks (g * cb accumulators, about 16 vector registers) outer, tokens
  // inner: per token the g weights are broadcast once and each chunk of the
  // value is loaded (and dequantised) once for all g heads.
  // Channel blocks of values_token_major (how many passes it makes over the tokens).
  int value_blocks() const {
    const int cw = channel_lanes(s_.value, d_);
    return d_ / (cw * largest_pow2_lanes(std::max(1, 16 / g_), d_ / cw));
  }

  // `prefetch(i, c0)` runs once per token i of the pass over channel block c0.
  void values_token_major(const QuantFormat& f, Value* n, Value* acc, const TokenPtr& value,
                          const std::function<void(Value* i, Value* c0)>& prefetch = nullptr) {
    const int cw = channel_lanes(f, d_);
    const int cb = largest_pow2_lanes(std::max(1, 16 / g_), d_ / cw);
    const int blocks = d_ / (cw * cb);
    // Few channel blocks (the vector isas): emitted one by one with constant
    // channels, so a quantized token's scales and minimums are loaded once per
    // token as one vector and each group's pair is a constant lane.
    const bool unrolled = blocks <= 4 && f.bits < 8;
    auto block = [&](Value* c0, int c0_const) {
      std::vector<Value*> a;  // [h * cb + j]
      for (int h = 0; h < g_; ++h)
        for (int j = 0; j < cb; ++j) {
          a.push_back(var(vf(cw), "acc"));
          set(a.back(), load_v(gep_f(acc, add(c0, c64(static_cast<std::int64_t>(h) * d_ + j * cw))), cw));
        }
      loop(c64(0), n, 1, [&](Value* i) {
        if (prefetch) prefetch(i, c0);
        Value* tok = value(i);
        std::vector<Value*> p;
        for (int h = 0; h < g_; ++h) p.push_back(splat(load_f(gep_f(srow(h), i)), cw));
        const int groups = f.bits < 16 ? d_ / f.group : 0;
        // (8-bit codes measured faster with the scalar scale loads: kept there.)
        Value* hdr = c0_const >= 0 ? load_half_v(tok, 2 * groups) : nullptr;
        for (int j = 0; j < cb; ++j) {
          Value* v;
          if (hdr) {
            const int c = c0_const + j * cw;
            const int grp = c / f.group;
            auto lane = [&](int k) {
              return b_.CreateShuffleVector(hdr, std::vector<int>(static_cast<std::size_t>(cw), k));
            };
            Value* codes = unpack(gep_b(tok, c64(4LL * groups)), c64(c), cw, f.bits, d_ * f.bits / 8);
            v = fma(codes, lane(grp), lane(groups + grp));
          } else {
            v = token_chunk(tok, f, d_, add(c0, c64(static_cast<std::int64_t>(j) * cw)), cw);
          }
          for (int h = 0; h < g_; ++h) {
            Value* x = a[static_cast<std::size_t>(h * cb + j)];
            set(x, fma(p[static_cast<std::size_t>(h)], v, get(x, vf(cw))));
          }
        }
      }, 2);
      for (int h = 0; h < g_; ++h)
        for (int j = 0; j < cb; ++j)
          store_v(get(a[static_cast<std::size_t>(h * cb + j)], vf(cw)),
                  gep_f(acc, add(c0, c64(static_cast<std::int64_t>(h) * d_ + j * cw))));
    };
    if (unrolled)
      for (int k = 0; k < blocks; ++k) block(c64(static_cast<std::int64_t>(k) * cw * cb), k * cw * cb);
    else
      loop(c64(0), c64(d_), static_cast<std::int64_t>(cw) * cb, [&](Value* c0) { block(c0, -1); });
  }

  // acc[h][c] += s_c sum_t p_t code_ct + m_c sum_t p_t for a per-channel value section.
  void values_per_channel(Value* sec, Value* acc) {
    const QuantFormat& f = s_.value;
    const int row = bt_ * f.bits / 8;
    Value* mins = b_.CreateGEP(i16_, sec, c64(d_));
    Value* codes = gep_b(sec, c64(4LL * d_));
    const int tw = largest_pow2_lanes(w_, bt_);
    std::vector<Value*> psum;
    for (int h = 0; h < g_; ++h) {
      Value* ps = var(vf(tw), "psum");
      set(ps, llvm::Constant::getNullValue(vf(tw)));
      loop(c64(0), c64(bt_), tw, [&](Value* t) { set(ps, b_.CreateFAdd(get(ps, vf(tw)), load_v(gep_f(srow(h), t), tw))); });
      psum.push_back(reduce_add(get(ps, vf(tw))));
    }
    loop(c64(0), c64(d_), 1, [&](Value* c) {
      Value* s = load_half(b_.CreateGEP(i16_, sec, c));
      Value* m = load_half(b_.CreateGEP(i16_, mins, c));
      Value* rowp = gep_b(codes, b_.CreateMul(c, c64(row)));
      std::vector<Value*> dot;
      for (int h = 0; h < g_; ++h) {
        dot.push_back(var(vf(tw), "dot"));
        set(dot[h], llvm::Constant::getNullValue(vf(tw)));
      }
      loop(c64(0), c64(bt_), tw, [&](Value* t) {
        Value* k = unpack(rowp, t, tw, f.bits, row);
        for (int h = 0; h < g_; ++h) set(dot[h], fma(load_v(gep_f(srow(h), t), tw), k, get(dot[h], vf(tw))));
      });
      for (int h = 0; h < g_; ++h) {
        Value* p = gep_f(acc, add(c, c64(static_cast<std::int64_t>(h) * d_)));
        Value* v = fma(s, reduce_add(get(dot[h], vf(tw))), b_.CreateFMul(m, psum[h]));
        store_f(b_.CreateFAdd(load_f(p), v), p);
      }
    });
  }

  // Raw scores of the chunk go to probs[h][first + i] (fixed up at the end).
  void save_scores(Value* probs, Value* total, Value* first, Value* n) {
    if_nonnull(probs, [&] {
      for (int h = 0; h < g_; ++h) {
        Value* dst = gep_f(probs, add(b_.CreateMul(total, c64(h)), first));
        loop(c64(0), n, 1, [&](Value* i) { store_f(load_f(gep_f(srow(h), i)), gep_f(dst, i)); });
      }
    });
  }

  void attend_range(Value* args, Value* b0, Value* b1, Value* with_tail, Value* m, Value* l, Value* acc,
                    Value* probs) {
    Value* blocks = field(args, kBlocks);
    Value* total = add(b_.CreateMul(field(args, kNBlocks), c64(bt_)), field(args, kNTail));
    const std::int64_t k_section = ir::section_bytes(s_.key, kd_, bt_);
    const std::int64_t k_tok = token_bytes(s_.key, kd_);
    const std::int64_t v_tok = token_bytes(s_.value, d_);
    const std::int64_t blk_bytes = k_section + ir::section_bytes(s_.value, d_, bt_);
    auto block_ptr = [&](Value* b) { return b_.CreateAlignedLoad(ptr_, b_.CreateGEP(ptr_, blocks, b), llvm::Align(8)); };
    // Blocks are separate allocations reached through a pointer table, and the
    // hardware prefetcher did not keep up with them: a one-thread fp16 pass read
    // 11 GB/s of a 35 GB/s stream. So the pass prefetches the block it will reach
    // about kPrefetchBytes later, spread over its inner loops (the same lines
    // prefetched in one burst per chunk stalled on miss buffers and gained
    // nothing). Indices are clamped to the range, so the table is never read past b1.
    auto clamp_block = [&](Value* idx) {
      return b_.CreateSelect(b_.CreateICmpSLT(idx, b1), idx, b_.CreateSub(b1, c64(1)));
    };
    const std::int64_t ahead = std::max<std::int64_t>(1, (kPrefetchBytes + blk_bytes - 1) / blk_bytes);
    if (bt_ == 1) {
      // One token per block: gather kChunkTokens block pointers per softmax update.
      loop(b0, b1, kChunkTokens, [&](Value* b) {

        Value* left = b_.CreateSub(b1, b);
        Value* n = b_.CreateSelect(b_.CreateICmpSLT(left, c64(kChunkTokens)), left, c64(kChunkTokens));
        // Each pass prefetches its own section of the block `ahead` tokens on: the
        // scores pass the key lines, the values pass the value lines (each channel
        // block its share). All 8 lines of an fp16 token from the scores pass alone
        // packed the misses into half the time and left the values pass idle on the
        // bus: fp16 1 thread 7.6-8.9 -> 7.0-7.2 ms, 2 threads 4.1-4.4 -> 3.6-3.8 ms.
        auto ahead_ptr = [&](Value* i) { return block_ptr(clamp_block(add(add(b, i), c64(ahead)))); };
        scores_token_major(s_.key, kd_, qk_, n, [&](Value* i) { return block_ptr(add(b, i)); },
                           [&](Value* i) { prefetch_range(ahead_ptr(i), k_section); });
        save_scores(probs, total, b, n);
        softmax_update(n, -1, m, l, acc);
        const std::int64_t v_lines = (blk_bytes - k_section + 63) / 64;
        const std::int64_t block_channels = d_ / value_blocks();
        values_token_major(s_.value, n, acc, [&](Value* i) { return gep_b(block_ptr(add(b, i)), c64(k_section)); },
                           [&](Value* i, Value* c0) {
                             // Lines [c0, c0 + block_channels) * v_lines / d of the value section.
                             Value* first = b_.CreateUDiv(b_.CreateMul(c0, c64(v_lines)), c64(d_));
                             Value* last = b_.CreateUDiv(b_.CreateMul(add(c0, c64(block_channels)), c64(v_lines)), c64(d_));
                             Value* vsec = gep_b(ahead_ptr(i), c64(k_section));
                             loop(first, last, 1, [&](Value* line) { prefetch_line(gep_b(vsec, b_.CreateMul(line, c64(64)))); });
                           });
      });
    } else {
      loop(b0, b1, 1, [&](Value* b) {
        Value* blk = block_ptr(b);
        if (int8_keys_)
          scores_per_channel_int8(blk);
        else if (per_channel(s_.key))
          scores_per_channel(blk, [&](Value* c) {
            // Channel c prefetches its share of the lines of block b + ahead.
            Value* next = block_ptr(clamp_block(add(b, c64(ahead))));
            const std::int64_t per = ((k_section + 63) / 64 + kd_ - 1) / kd_;
            for (std::int64_t j = 0; j < per; ++j)
              prefetch_line(gep_b(next, b_.CreateMul(add(b_.CreateMul(c, c64(per)), c64(j)), c64(64))));
          });
        else
          scores_token_major(s_.key, kd_, qk_, c64(bt_),
                             [&](Value* i) { return gep_b(blk, b_.CreateMul(i, c64(k_tok))); });
        save_scores(probs, total, b_.CreateMul(b, c64(bt_)), c64(bt_));
        Value* vsec = gep_b(blk, c64(k_section));
        if (int8_values_) {
          values_int8_block(vsec, m, l, [&](Value* slot, std::int64_t slots) {
            // Iteration `slot` of `slots` prefetches its share of the lines of block b + ahead.
            const std::int64_t lines = (blk_bytes + 63) / 64;
            const std::int64_t per = (lines + slots - 1) / slots;
            Value* next = block_ptr(clamp_block(add(b, c64(ahead))));
            for (std::int64_t j = 0; j < per; ++j) {
              Value* line = add(b_.CreateMul(slot, c64(per)), c64(j));
              if_true(b_.CreateICmpSLT(line, c64(lines)), [&] { prefetch_line(gep_b(next, b_.CreateMul(line, c64(64)))); });
            }
          });
        } else {
          softmax_update(c64(bt_), bt_, m, l, acc);
          if (per_channel(s_.value))
            values_per_channel(vsec, acc);
          else
            values_token_major(s_.value, c64(bt_), acc,
                             [&](Value* i) { return gep_b(vsec, b_.CreateMul(i, c64(v_tok))); },
                             [&](Value* i, Value* c0) {
                               // Token i of each channel block prefetches its share of the value lines of block b + ahead.
                               const std::int64_t v_lines = (blk_bytes - k_section + 63) / 64;
                               const std::int64_t per = (v_lines + bt_ * value_blocks() - 1) / (bt_ * value_blocks());
                               Value* k = b_.CreateUDiv(c0, c64(d_ / value_blocks()));
                               Value* slot = add(b_.CreateMul(k, c64(bt_)), i);
                               Value* next = gep_b(block_ptr(clamp_block(add(b, c64(ahead)))), c64(k_section));
                               for (std::int64_t j = 0; j < per; ++j) {
                                 Value* line = add(b_.CreateMul(slot, c64(per)), c64(j));
                                 if_true(b_.CreateICmpSLT(line, c64(v_lines)),
                                         [&] { prefetch_line(gep_b(next, b_.CreateMul(line, c64(64)))); });
                               }
                             });
        }
      });
    }
    if (int8_values_) fold_int8_values(acc);
    // The fp16 tail: full-dimension keys (never low rank), dotted with the unprojected query.
    if_true(with_tail, [&] {
      Value* tk = field(args, kTailK);
      Value* tv = field(args, kTailV);
      Value* n_tail = field(args, kNTail);
      const QuantFormat fp16{16, ir::QuantAxis::PerToken, 32};
      Value* first_tail = b_.CreateMul(field(args, kNBlocks), c64(bt_));
      loop(c64(0), n_tail, kChunkTokens, [&](Value* t0) {
        Value* left = b_.CreateSub(n_tail, t0);
        Value* n = b_.CreateSelect(b_.CreateICmpSLT(left, c64(kChunkTokens)), left, c64(kChunkTokens));
        scores_token_major(fp16, d_, qs_, n,
                           [&](Value* i) { return b_.CreateGEP(i16_, tk, b_.CreateMul(add(t0, i), c64(d_))); });
        save_scores(probs, total, add(first_tail, t0), n);
        softmax_update(n, -1, m, l, acc);
        values_token_major(fp16, n, acc,
                           [&](Value* i) { return b_.CreateGEP(i16_, tv, b_.CreateMul(add(t0, i), c64(d_))); });
      });
    });
  }

  llvm::LLVMContext& ctx_;
  llvm::Module& mod_;
  const ir::KernelSpec& s_;
  llvm::IRBuilder<> b_;
  Type *f32_, *f16_, *i8_, *i16_, *i32_, *i64_, *ptr_;
  llvm::StructType* args_ty_;
  int w_, d_, kd_, g_, bt_, sbuf_stride_;
  Value* qs_ = nullptr;
  Value* qk_ = nullptr;
  Value* qsc_ = nullptr;
  Value* qi_ = nullptr;
  Value* sbuf_ = nullptr;
  bool use_vnni_ = false;
  bool int8_keys_ = false;
  bool int8_values_ = false;
  // Int8 values (values_int8_block): a block's headers [2 * groups][B] (scales
  // then mins, rewritten to s_t W / A and m_t + z s_t), weights u8
  // [g][groups][B], block sums [g][vector][16] in the tile channel order, min
  // sums [g][groups][16 lanes], beta * step [g][groups], the block's step
  // A / W per group [groups].
  Value* vhdr_ = nullptr;
  Value* vweights_ = nullptr;
  Value* vsums_ = nullptr;
  Value* vmins_ = nullptr;
  Value* vsteps_ = nullptr;
  Value* vblock_steps_ = nullptr;
  Value* vtiles_ = nullptr;  // the block's value code tiles (build_value_tiles), 64 bytes each
};

}  // namespace

void add_kernel_functions(llvm::Module& module, const ir::KernelSpec& spec, bool vnni) {
  require_generated_formats(spec);
  if (spec.isa == ir::KernelIsa::Host) throw Error("internal: kernel isa must be resolved before code generation");
  ir::validate(spec);
  const std::string name = ir::kernel_name(spec);
  KernelGen gen(module, spec, vnni);
  Function* body = gen.emit_body(name + "_body");
  gen.emit_full(name, body);
  gen.emit_partial(name + "_partial", body);
}

}  // namespace kvc::llvm_backend
