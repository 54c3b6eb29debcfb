// ir/layout.cpp byte formulas against numbers worked out by hand.
#include <gtest/gtest.h>

#include "ir/layout.h"

namespace kvc::ir {
namespace {

Module llama8b(int layers, std::int64_t batch) {
  return make_uncompressed_module({"Llama-3.1-8B", layers, 32, 8, 128, 500000.0, DType::F16}, {32768, batch, 0}, 0);
}

TEST(IrLayout, Llama8BFp16IsFourGiBPerSequence) {
  // 32 layers x 8 KV heads x 32768 tokens x 128 dims x 2 (K and V) x 2 bytes = 2^32.
  const Module m = llama8b(32, 1);
  EXPECT_EQ(fp16_bytes(m), 4LL << 30);
  EXPECT_EQ(total_bytes(m), 4LL << 30);
  // An uncompressed layer has no tail: tokens go straight to one-token fp16 blocks.
  EXPECT_EQ(tail_capacity(m.layers[0]), 0);
  EXPECT_EQ(token_block(m.layers[0]), 1);
  EXPECT_EQ(layer_bytes(m, 0).main, 128LL << 20);
  EXPECT_EQ(layer_bytes_per_sequence(llama8b(32, 4), 5), 128LL << 20);
  EXPECT_EQ(total_bytes(llama8b(32, 4)), 16LL << 30);
}

LayerPlan k4v2_g32_r128() {
  LayerPlan p;
  p.key = {4, QuantAxis::PerChannel, 32};
  p.value = {2, QuantAxis::PerToken, 32};
  p.residual = 128;
  return p;
}

TEST(IrLayout, K4V2Group32Residual128ByHand) {
  Module m = llama8b(1, 1);
  m.layers[0] = k4v2_g32_r128();
  const LayerPlan& p = m.layers[0];
  EXPECT_EQ(token_block(p), 32);
  EXPECT_EQ(tail_capacity(p), 128);
  // (32768 - 128) / 32 = 1020 blocks.
  EXPECT_EQ(main_block_capacity(p, 32768), 1020);
  // K per channel: 128 channels x (fp16 scale + fp16 min = 4 bytes, 32 codes x 4 bits = 16 bytes) = 2560.
  EXPECT_EQ(section_bytes(p.key, 128, 32), 2560);
  // V per token: 32 tokens x (128/32 groups x 4 bytes = 16, 128 codes x 2 bits = 32 bytes) = 1536.
  EXPECT_EQ(section_bytes(p.value, 128, 32), 1536);
  EXPECT_EQ(block_bytes(p, 128), 4096);
  // Tail: 128 tokens x 128 dims x fp16 x (K and V) = 65536 per head.
  EXPECT_EQ(tail_bytes(p, 128), 65536);
  const LayerBytes b = layer_bytes(m, 0);
  EXPECT_EQ(b.main, 8LL * 1020 * 4096);  // 33,423,360
  EXPECT_EQ(b.tail, 8LL * 65536);        //    524,288
  EXPECT_EQ(b.scores, 0);
  EXPECT_EQ(b.basis, 0);
  EXPECT_EQ(b.total(), 33947648);
}

TEST(IrLayout, ThreeBitCodesCrossBytes) {
  // 32 tokens x 3 bits = 12 bytes per channel; per token 128 x 3 bits = 48 bytes.
  EXPECT_EQ(section_bytes({3, QuantAxis::PerChannel, 32}, 128, 32), 128 * (4 + 12));
  EXPECT_EQ(section_bytes({3, QuantAxis::PerToken, 32}, 128, 1), 4 * 4 + 48);
  EXPECT_EQ(section_bytes({16, QuantAxis::PerToken, 32}, 64, 8), 8 * 64 * 2);
}

TEST(IrLayout, H2OKeepsScoresForEverySlot) {
  Module m = llama8b(1, 2);
  m.layers[0] = k4v2_g32_r128();
  m.layers[0].retention = {RetentionPolicy::H2O, 2048, 4, 32, 0, 0.0};
  const LayerPlan& p = m.layers[0];
  EXPECT_EQ(kept_tokens(p, 32768), 2048);
  EXPECT_EQ(main_block_capacity(p, 32768), 60);  // (2048 - 128) / 32
  const LayerBytes b = layer_bytes(m, 0);
  const std::int64_t heads = 8 * 2;
  EXPECT_EQ(b.main, heads * 60 * 4096);
  EXPECT_EQ(b.tail, heads * 65536);
  EXPECT_EQ(b.scores, heads * (60 * 32 + 128) * 4);  // one fp32 per slot, main and tail
  // StreamingLLM keeps no scores; budgets that do not fill a block round up to whole blocks.
  m.layers[0].retention = {RetentionPolicy::StreamingLLM, 2050, 4, 32, 0, 0.0};
  EXPECT_EQ(main_block_capacity(m.layers[0], 32768), 61);
  EXPECT_EQ(layer_bytes(m, 0).scores, 0);
}

TEST(IrLayout, CrossLayerBasisCountedOnceAndCalibratedBasisOncePerBatch) {
  Module m = llama8b(3, 2);
  for (LayerPlan& p : m.layers) p.lowrank = {32, BasisSharing::CrossLayer, 0, BasisSource::Prefill};
  m.layers[2].lowrank = {32, BasisSharing::PerLayer, -1, BasisSource::Calibrated};
  EXPECT_EQ(basis_bytes_per_head(m.layers[0], 128), 128 * 32 * 4);
  // Prefill bases are per sequence: 2 sequences x 8 heads x 16384 bytes, once for the group.
  EXPECT_EQ(layer_bytes(m, 0).basis, 16 * 16384);
  EXPECT_EQ(layer_bytes(m, 1).basis, 0);
  // A calibrated basis is shared by the batch and left out of the per-sequence share.
  EXPECT_EQ(layer_bytes(m, 2).basis, 8 * 16384);
  // One sequence: 8 heads x (32767 blocks x 320 bytes + a 1-token tail of 512 bytes) = 83,887,616.
  EXPECT_EQ(layer_bytes_per_sequence(m, 2), 8LL * 32767 * 320 + 8 * 512);
  // Low-rank keys at 16 bits: block of 1 token = 32 key dims + 128 value dims, fp16; tail = 1 token.
  EXPECT_EQ(token_block(m.layers[0]), 1);
  EXPECT_EQ(tail_capacity(m.layers[0]), 1);
  EXPECT_EQ(block_bytes(m.layers[0], 128), (32 + 128) * 2);
  EXPECT_EQ(layer_bytes(m, 0).main, 16LL * 32767 * 320);
}

}  // namespace
}  // namespace kvc::ir
