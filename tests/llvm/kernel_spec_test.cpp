// Lowering layer plans to kernel specs: names, hashes, canonical forms, errors.
#include <gtest/gtest.h>

#include "ir/kernel_spec.h"
#include "support/diagnostics.h"

namespace kvc::ir {
namespace {

Module llama8b_like() {
  ModelShape shape{"llama-3.1-8b", 4, 32, 8, 128, 500000.0, DType::F16};
  Module m = make_uncompressed_module(shape, Workload{32768, 1, 0}, 0);
  m.layers[1].key = {4, QuantAxis::PerChannel, 32};
  m.layers[1].value = {2, QuantAxis::PerToken, 32};
  m.layers[1].residual = 128;
  m.layers[2] = m.layers[1];
  m.layers[2].index = 2;
  m.layers[3].key = {4, QuantAxis::PerChannel, 32};
  m.layers[3].lowrank = {64, BasisSharing::PerLayer, -1, BasisSource::Prefill};
  m.layers[3].index = 3;
  return m;
}

TEST(KernelSpec, LowersShapeAndFormats) {
  const Module m = llama8b_like();
  const KernelSpec s = lower_layer(m, 1, KernelIsa::Avx512);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.g, 4);
  EXPECT_EQ(s.token_block, 32);
  EXPECT_EQ(s.key_dims, 128);
  EXPECT_FALSE(s.lowrank);
  EXPECT_EQ(kernel_name(s), "kvc_attend_k4pc32_v2pt32_d128_g4_avx512");
  const KernelSpec lr = lower_layer(m, 3, KernelIsa::Avx2);
  EXPECT_TRUE(lr.lowrank);
  EXPECT_EQ(lr.key_dims, 64);
  EXPECT_EQ(kernel_name(lr), "kvc_attend_k4pc32_v16_d128_g4_r64_avx2");
  EXPECT_EQ(kernel_name(lower_layer(m, 0, KernelIsa::Scalar)), "kvc_attend_k16_v16_d128_g4_scalar");
}

TEST(KernelSpec, EqualLayersShareOneKernel) {
  const Module m = llama8b_like();
  const LoweredKernels k = lower_module(m);
  ASSERT_EQ(k.layer_kernel.size(), 4u);
  EXPECT_EQ(k.specs.size(), 3u);
  EXPECT_EQ(k.layer_kernel[1], k.layer_kernel[2]);
  EXPECT_NE(k.layer_kernel[0], k.layer_kernel[1]);
  EXPECT_EQ(hash(lower_layer(m, 1)), hash(lower_layer(m, 2)));
  EXPECT_NE(hash(lower_layer(m, 1)), hash(lower_layer(m, 3)));
  EXPECT_NE(hash(lower_layer(m, 1, KernelIsa::Avx2)), hash(lower_layer(m, 1, KernelIsa::Avx512)));
}

TEST(KernelSpec, UnusedFieldsOfFp16FormatsDoNotSplitKernels) {
  Module m = llama8b_like();
  m.layers[0].key.group = 64;  // ignored: keys are fp16
  m.layers[0].value.axis = QuantAxis::PerChannel;
  EXPECT_EQ(lower_layer(m, 0), lower_layer(llama8b_like(), 0));
}

TEST(KernelSpec, BadPlansAreErrors) {
  Module m = llama8b_like();
  m.layers[1].value = {2, QuantAxis::PerToken, 48};  // does not divide 128
  EXPECT_THROW(lower_layer(m, 1), Error);
  m = llama8b_like();
  m.layers[1].key.bits = 5;
  EXPECT_THROW(lower_layer(m, 1), Error);
  m = llama8b_like();
  m.model.kv_heads = 5;
  EXPECT_THROW(lower_layer(m, 0), Error);
  EXPECT_THROW(lower_layer(llama8b_like(), 9), Error);
  try {
    Module bad = llama8b_like();
    bad.layers[2].value.group = 48;
    lower_layer(bad, 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "layers[2].value.group");
  }
  EXPECT_EQ(parse_kernel_isa("avx2"), KernelIsa::Avx2);
  EXPECT_THROW(parse_kernel_isa("neon"), Error);
}

}  // namespace
}  // namespace kvc::ir

namespace kvc::ir {
namespace {

TEST(KernelSpec, Int8DotIsPartOfNameAndHash) {
  const Module m = llama8b_like();
  KernelSpec s = lower_layer(m, 1, KernelIsa::Avx512);
  EXPECT_FALSE(s.int8_dot);
  EXPECT_TRUE(supports_int8_dot(s));
  KernelSpec i8 = s;
  i8.int8_dot = true;
  EXPECT_NO_THROW(validate(i8));
  EXPECT_EQ(kernel_name(i8), "kvc_attend_k4pc32_v2pt32_d128_g4_i8_avx512");
  EXPECT_NE(hash(s), hash(i8));
  EXPECT_NE(s, i8);
}

TEST(KernelSpec, Int8DotNeedsByteAlignedPerChannelKeys) {
  const Module m = llama8b_like();
  auto rejected = [](KernelSpec s) {
    s.int8_dot = true;
    EXPECT_FALSE(supports_int8_dot(s));
    try {
      validate(s);
      ADD_FAILURE() << kernel_name(s) << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), "int8_dot");
    }
  };
  rejected(lower_layer(m, 0));  // fp16 keys
  rejected(lower_layer(m, 3));  // low-rank keys
  KernelSpec three = lower_layer(m, 1);
  three.key.bits = 3;
  three.value.bits = 3;
  rejected(three);
  KernelSpec narrow_groups = lower_layer(m, 1);  // 2-bit values in groups of 8: 2 code bytes per group
  narrow_groups.key.bits = 3;
  narrow_groups.value.group = 8;
  rejected(narrow_groups);
  KernelSpec per_token = lower_layer(m, 0);
  per_token.key = {4, QuantAxis::PerToken, 32};
  per_token.value = {4, QuantAxis::PerChannel, 32};
  per_token.token_block = 32;
  rejected(per_token);
  KernelSpec small_block = lower_layer(m, 1);
  small_block.key.group = small_block.token_block = 8;
  rejected(small_block);
}

// Keys and values each admit int8 dot products on their own; the option covers
// whichever does.
TEST(KernelSpec, Int8DotCoversKeysAndValuesSeparately) {
  const Module m = llama8b_like();
  KernelSpec both = lower_layer(m, 1);  // k4pc32, v2pt32
  EXPECT_TRUE(int8_dot_keys(both));
  EXPECT_TRUE(int8_dot_values(both));
  KernelSpec values_only = both;
  values_only.key.bits = 3;
  EXPECT_FALSE(int8_dot_keys(values_only));
  EXPECT_TRUE(int8_dot_values(values_only));
  values_only.int8_dot = true;
  EXPECT_NO_THROW(validate(values_only));
  KernelSpec keys_only = both;
  keys_only.value.bits = 3;
  EXPECT_TRUE(int8_dot_keys(keys_only));
  EXPECT_FALSE(int8_dot_values(keys_only));
  KernelSpec eight = both;
  eight.value = {8, QuantAxis::PerToken, 32};
  EXPECT_TRUE(int8_dot_values(eight));
}

}  // namespace
}  // namespace kvc::ir
