// Generated quantize-on-append encoders against the reference encoder
// (backends/reference/quantize.h encode_block): the bytes must be IDENTICAL, for
// every format (bits 16/8/4/3/2, per-channel and per-token groups, low-rank key
// dims), head_dims 8..256, and data that probes every rounding step: constant
// channels and groups, extreme and tiny magnitudes, signed zeros, fp16 ties and
// subnormals. Run for each isa this CPU has; the encoder must also never write
// past its block.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/llvm/append_codegen.h"
#include "backends/llvm/isa.h"
#include "backends/llvm/kernel_jit.h"
#include "backends/reference/quantize.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::llvm_backend {
namespace {

constexpr int kRandomLayouts = 160;
constexpr std::uint8_t kGuard = 0xA5;
constexpr std::size_t kGuardBytes = 64;

struct Layout {
  ir::LayerPlan plan;
  int head_dim = 0;
  int g = 1;

  int block() const { return ir::token_block(plan); }
  int key_dims() const { return ir::key_dims(plan, head_dim); }
  std::string describe() const {
    auto fmt = [](const ir::QuantFormat& f) {
      return std::to_string(f.bits) + (f.axis == ir::QuantAxis::PerChannel ? "pc" : "pt") + std::to_string(f.group);
    };
    return "K" + fmt(plan.key) + " V" + fmt(plan.value) + " d" + std::to_string(head_dim) + " kd" +
           std::to_string(key_dims()) + " B" + std::to_string(block());
  }
  ir::KernelSpec spec(ir::KernelIsa isa) const {
    ir::Module m;
    m.model.name = "append-test";
    m.model.layers = 1;
    m.model.kv_heads = 1;
    m.model.q_heads = g;
    m.model.head_dim = head_dim;
    m.workload.context = 1024;
    m.layers = {plan};
    return ir::lower_layer(m, 0, isa);
  }
};

// Whether the reference can store the layout (the same rule the verifier applies).
bool storable(const Layout& l) {
  try {
    reference::check_format(l.plan.key, l.key_dims(), l.block(), "key");
    reference::check_format(l.plan.value, l.head_dim, l.block(), "value");
    return true;
  } catch (const Error&) {
    return false;
  }
}

ir::QuantFormat random_format(std::mt19937& rng, int block, int dims, bool may_be_per_channel) {
  static const int kBits[] = {16, 8, 4, 3, 2};
  ir::QuantFormat f;
  f.bits = kBits[rng() % 5];
  if (may_be_per_channel && rng() % 2 == 0) {
    f.axis = ir::QuantAxis::PerChannel;
    f.group = block;
  } else {
    f.axis = ir::QuantAxis::PerToken;
    std::vector<int> divisors;
    for (int d = 1; d <= dims; ++d)
      if (dims % d == 0) divisors.push_back(d);
    f.group = divisors[rng() % divisors.size()];
  }
  return f;
}

Layout random_layout(std::mt19937& rng) {
  static const int kHeadDims[] = {8, 16, 24, 32, 48, 64, 96, 128, 160, 256};
  static const int kBlocks[] = {8, 16, 24, 32, 64, 128};
  for (;;) {
    Layout l;
    l.head_dim = kHeadDims[rng() % 10];
    l.g = 1 + static_cast<int>(rng() % 4);
    const int block = kBlocks[rng() % 6];
    if (rng() % 4 == 0) {
      l.plan.lowrank.rank = 1 + static_cast<int>(rng() % static_cast<unsigned>(l.head_dim));
      l.plan.lowrank.sharing = ir::BasisSharing::PerLayer;
    }
    const int kd = ir::key_dims(l.plan, l.head_dim);
    l.plan.key = random_format(rng, block, kd, true);
    l.plan.value = random_format(rng, block, l.head_dim, l.plan.key.axis != ir::QuantAxis::PerChannel ||
                                                             l.plan.key.bits == 16);
    if (l.plan.value.axis == ir::QuantAxis::PerChannel && l.plan.value.bits < 16) l.plan.value.group = block;
    l.plan.residual = static_cast<int>(rng() % 40);
    if (storable(l)) return l;
  }
}

// The K8V8..K2V2 formats at the shapes the runtime sees, so every bit width
// and both axes are covered whatever the random draw.
std::vector<Layout> fixed_layouts() {
  std::vector<Layout> out;
  for (int hd : {8, 64, 128, 256})
    for (int kb : {16, 8, 4, 3, 2})
      for (int vb : {16, 8, 4, 3, 2}) {
        Layout l;
        l.head_dim = hd;
        l.plan.key = {kb, ir::QuantAxis::PerChannel, 32};
        l.plan.value = {vb, ir::QuantAxis::PerToken, hd >= 32 ? 32 : hd};
        l.plan.residual = 32;
        if (storable(l)) out.push_back(l);
      }
  Layout lowrank;
  lowrank.head_dim = 128;
  lowrank.plan.key = {4, ir::QuantAxis::PerChannel, 64};
  lowrank.plan.value = {2, ir::QuantAxis::PerToken, 64};
  lowrank.plan.lowrank = {24, ir::BasisSharing::PerLayer, -1, ir::BasisSource::Prefill};
  out.push_back(lowrank);
  Layout values_per_channel;
  values_per_channel.head_dim = 64;
  values_per_channel.plan.key = {8, ir::QuantAxis::PerToken, 16};
  values_per_channel.plan.value = {3, ir::QuantAxis::PerChannel, 16};
  out.push_back(values_per_channel);
  return out;
}

enum class Data { Normal, RoundedToHalf, Constant, Extreme, Tiny, SignedZeros, Ties, Mixed };
constexpr Data kAllData[] = {Data::Normal, Data::RoundedToHalf, Data::Constant, Data::Extreme,
                             Data::Tiny,   Data::SignedZeros,   Data::Ties,     Data::Mixed};

const char* to_string(Data d) {
  switch (d) {
    case Data::Normal: return "normal";
    case Data::RoundedToHalf: return "rounded-to-half";
    case Data::Constant: return "constant";
    case Data::Extreme: return "extreme";
    case Data::Tiny: return "tiny";
    case Data::SignedZeros: return "signed-zeros";
    case Data::Ties: return "ties";
    case Data::Mixed: return "mixed";
  }
  return "?";
}

// x [block][dims] of the given kind. Every value is finite with |x| <= 65504.
std::vector<float> make_data(Data kind, int block, int dims, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  const std::size_t n = static_cast<std::size_t>(block) * static_cast<std::size_t>(dims);
  std::vector<float> x(n);
  const float scale = std::pow(10.0f, static_cast<float>(static_cast<int>(rng() % 7) - 3));
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t t = i / static_cast<std::size_t>(dims), c = i % static_cast<std::size_t>(dims);
    switch (kind) {
      case Data::Normal: x[i] = normal(rng) * scale; break;
      case Data::RoundedToHalf: x[i] = round_to_half(normal(rng) * scale); break;
      case Data::Constant:
        // Constant along tokens for even channels (per-channel groups), constant
        // along channels for even tokens (per-token groups); s = 0 either way.
        x[i] = (c % 2 == 0) ? 0.37f * static_cast<float>(c + 1) : (t % 2 == 0 ? -1.5f : normal(rng));
        break;
      case Data::Extreme: {
        const unsigned r = rng() % 6;
        x[i] = r == 0 ? 65504.0f : r == 1 ? -65504.0f : r == 2 ? 65503.9f : normal(rng) * 30000.0f;
        x[i] = std::fmax(-65504.0f, std::fmin(65504.0f, x[i]));
        break;
      }
      case Data::Tiny: {
        // fp16 subnormals (< 6.1e-5) and values that round to zero in fp16.
        const unsigned r = rng() % 4;
        x[i] = r == 0 ? unit(rng) * 6e-8f : r == 1 ? unit(rng) * 3e-5f : r == 2 ? 2.9802322e-8f : unit(rng) * 1e-9f;
        break;
      }
      case Data::SignedZeros: {
        const unsigned r = rng() % 4;
        x[i] = r == 0 ? 0.0f : r == 1 ? -0.0f : r == 2 ? std::fabs(normal(rng)) : -0.0f;
        break;
      }
      case Data::Ties: {
        // Halfway points: between fp16 neighbours (fp16 rounding ties) and at
        // k + 0.5 code steps of a grid starting at 0 (nearbyint ties).
        const float step = 0.25f;
        const int k = static_cast<int>(rng() % 16);
        x[i] = rng() % 2 ? (static_cast<float>(k) + 0.5f) * step
                         : 1.0f + static_cast<float>(2 * (rng() % 64) + 1) * 0x1p-11f;  // mid fp16 ulps near 1
        if (t == 0 && c == 0) x[i] = 0.0f;
        break;
      }
      case Data::Mixed: x[i] = (rng() % 3 == 0) ? normal(rng) * 1000.0f : normal(rng) * 1e-4f; break;
    }
  }
  return x;
}

class AppendCodegen : public ::testing::TestWithParam<ir::KernelIsa> {};

TEST_P(AppendCodegen, BytesEqualTheReferenceEncoder) {
  const ir::KernelIsa isa = GetParam();
  if (!host_supports(isa)) GTEST_SKIP() << "this CPU cannot run " << ir::to_string(isa) << " code";
  std::mt19937 rng(20240605);
  std::vector<Layout> layouts = fixed_layouts();
  for (int i = 0; i < kRandomLayouts; ++i) layouts.push_back(random_layout(rng));
  std::vector<ir::KernelSpec> specs;
  for (const Layout& l : layouts) specs.push_back(l.spec(isa));
  KernelJit jit;
  const auto encoders = jit.get_all_appends(specs);
  std::printf("compiled %d append encoders in %.0f ms\n", jit.stats().append_kernels, jit.stats().compile_ms);
  ASSERT_EQ(encoders.size(), layouts.size());
  int compared = 0;
  for (std::size_t i = 0; i < layouts.size(); ++i) {
    const Layout& l = layouts[i];
    const CompiledAppend& enc = *encoders[i];
    EXPECT_EQ(enc.spec.isa, isa);
    EXPECT_EQ(enc.name, append_kernel_name(enc.spec));
    const std::size_t bytes = static_cast<std::size_t>(ir::block_bytes(l.plan, l.head_dim));
    for (Data kind : kAllData) {
      SCOPED_TRACE(l.describe() + " data " + to_string(kind));
      const std::vector<float> k = make_data(kind, l.block(), l.key_dims(), rng);
      const std::vector<float> v = make_data(kind, l.block(), l.head_dim, rng);
      std::vector<std::uint8_t> want(bytes), got(bytes + kGuardBytes, kGuard);
      reference::encode_block(l.plan, l.head_dim, k.data(), v.data(), want.data());
      const kvc_append_args args{k.data(), v.data(), got.data()};
      enc.encode(&args);
      for (std::size_t b = 0; b < kGuardBytes; ++b) ASSERT_EQ(got[bytes + b], kGuard) << "wrote past the block";
      got.resize(bytes);
      std::size_t first_diff = bytes;
      for (std::size_t b = 0; b < bytes && first_diff == bytes; ++b)
        if (got[b] != want[b]) first_diff = b;
      ASSERT_EQ(first_diff, bytes) << "first differing byte " << first_diff << " of " << bytes << ": got "
                                   << int(got[first_diff]) << ", reference " << int(want[first_diff]);
      ++compared;
    }
  }
  EXPECT_EQ(compared, static_cast<int>(layouts.size() * std::size(kAllData)));
}

INSTANTIATE_TEST_SUITE_P(AllIsas, AppendCodegen,
                         ::testing::Values(ir::KernelIsa::Avx512, ir::KernelIsa::Avx2, ir::KernelIsa::Scalar),
                         [](const auto& info) { return std::string(ir::to_string(info.param)); });

TEST(AppendJit, OneEncoderPerLayoutWhateverTheGroupSize) {
  Layout l;
  l.head_dim = 64;
  l.plan.key = {4, ir::QuantAxis::PerChannel, 32};
  l.plan.value = {2, ir::QuantAxis::PerToken, 32};
  KernelJit jit;
  l.g = 1;
  const CompiledAppend& a = jit.get_append(l.spec(ir::KernelIsa::Scalar));
  l.g = 8;
  const CompiledAppend& b = jit.get_append(l.spec(ir::KernelIsa::Scalar));
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a.name, "kvc_append_k4pc32_v2pt32_d64_scalar");
  EXPECT_EQ(jit.stats().append_kernels, 1);
  EXPECT_EQ(jit.stats().cache_hits, 1);
  EXPECT_GT(jit.stats().compile_ms, 0.0);
}

TEST(AppendJit, RejectsASpecTheLayoutCannotHold) {
  ir::KernelSpec s;
  s.head_dim = 64;
  s.key_dims = 64;
  s.key = {3, ir::QuantAxis::PerChannel, 12};  // 12 three-bit codes are not whole bytes
  s.token_block = 12;
  s.isa = ir::KernelIsa::Scalar;
  KernelJit jit;
  EXPECT_THROW(jit.get_append(s), Error);
}

}  // namespace
}  // namespace kvc::llvm_backend
