#include <gtest/gtest.h>

#include <limits>

#include "ir/printer.h"
#include "support/diagnostics.h"

namespace kvc::ir {
namespace {

Module llama_example() {
  Module m = make_uncompressed_module({"Llama-3.1-8B", 2, 32, 8, 128, 500000.0, DType::F16}, {32768, 4, 512},
                                      4294967296);
  LayerPlan& l0 = m.layers[0];
  l0.key = {4, QuantAxis::PerChannel, 32};
  l0.value = {2, QuantAxis::PerToken, 32};
  l0.residual = 128;
  l0.retention = {RetentionPolicy::StreamingLLM, 2048, 4, 32, 0, 0.0};
  m.layers[1].lowrank = {64, BasisSharing::CrossLayer, 0, BasisSource::Prefill};
  return m;
}

TEST(IrPrinter, GoldenModule) {
  EXPECT_EQ(print_module(llama_example()),
            "; kvc plan v1\n"
            "module \"Llama-3.1-8B\" {\n"
            "  model    layers=2 q_heads=32 kv_heads=8 head_dim=128 rope_theta=500000 cache=fp16\n"
            "  workload context=32768 batch=4 generate=512\n"
            "  budget   bytes=4294967296\n"
            "}\n"
            "layer 0: k=int4/per-channel/g32 v=int2/per-token/g32 residual=128 "
            "keep=streamingllm(budget=2048,sink=4,window=32) rank=none\n"
            "layer 1: k=fp16 v=fp16 residual=0 keep=full rank=64/cross-layer(group=0,source=prefill)\n");
}

TEST(IrPrinter, PolicyParametersAndShortForms) {
  LayerPlan p;
  p.index = 7;
  p.retention = {RetentionPolicy::SnapKV, 512, 0, 16, 5, 0.0};
  p.lowrank = {32, BasisSharing::PerLayer, -1, BasisSource::Calibrated};
  EXPECT_EQ(print_layer(p),
            "layer 7: k=fp16 v=fp16 residual=0 keep=snapkv(budget=512,window=16,pool=5) rank=32/layer(source=calibrated)");
  p.retention = {RetentionPolicy::CAKE, 100, 0, 8, 5, 0.1};
  p.lowrank = {};
  EXPECT_EQ(print_layer(p), "layer 7: k=fp16 v=fp16 residual=0 keep=cake(budget=100,window=8,pool=5,gamma=0.1) rank=none");
  // Unused parameters still appear when they are not zero, so no field is lost.
  p.retention = {RetentionPolicy::H2O, 100, 1, 8, 3, 0.0};
  EXPECT_EQ(print_layer(p), "layer 7: k=fp16 v=fp16 residual=0 keep=h2o(budget=100,sink=1,window=8,pool=3) rank=none");
  p.retention = {RetentionPolicy::Full, 0, 0, 0, 0, 2.5};
  EXPECT_EQ(print_layer(p), "layer 7: k=fp16 v=fp16 residual=0 keep=full(gamma=2.5) rank=none");
  // 16-bit tensors with non-default axis or group spell them out.
  p.retention = {};
  p.key = {16, QuantAxis::PerToken, 32};
  p.value = {16, QuantAxis::PerToken, 64};
  p.lowrank = {0, BasisSharing::None, 3, BasisSource::Prefill};
  EXPECT_EQ(print_layer(p), "layer 7: k=fp16/per-token/g32 v=fp16/per-token/g64 residual=0 keep=full rank=0/none(group=3)");
}

TEST(IrPrinter, ExactDoubles) {
  EXPECT_EQ(format_exact_double(0.1), "0.1");
  EXPECT_EQ(format_exact_double(500000.0), "500000");
  EXPECT_EQ(format_exact_double(10000.0), "10000");
  EXPECT_EQ(format_exact_double(123.456), "123.456");
  EXPECT_EQ(format_exact_double(0.0), "0");
  EXPECT_EQ(format_exact_double(-0.0), "-0");
  EXPECT_EQ(format_exact_double(1e-6), "0.000001");
  EXPECT_EQ(format_exact_double(1e-7), "1e-07");
  EXPECT_EQ(format_exact_double(1e20), "100000000000000000000");
  EXPECT_EQ(format_exact_double(1e21), "1e+21");
  EXPECT_EQ(format_exact_double(1e-300), "1e-300");
  EXPECT_EQ(format_exact_double(5e-324), "5e-324");
  EXPECT_EQ(format_exact_double(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
  EXPECT_EQ(format_exact_double(-2.5), "-2.5");
  EXPECT_EQ(format_exact_double(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(format_exact_double(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(IrPrinter, QuotedNames) {
  EXPECT_EQ(quote_string("plain"), "\"plain\"");
  EXPECT_EQ(quote_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(quote_string("l1\nl2\tx\r"), "\"l1\\nl2\\tx\\r\"");
  EXPECT_EQ(quote_string(std::string("\x01\x7f", 2) + std::string(1, '\0')), "\"\\x01\\x7F\\x00\"");
  EXPECT_EQ(quote_string("caf\xc3\xa9 \xf0\x9f\xa6\x99"), "\"caf\xc3\xa9 \xf0\x9f\xa6\x99\"");  // UTF-8 as is
  EXPECT_EQ(quote_string("\xff\xc3"), "\"\\xFF\\xC3\"");                                       // not UTF-8
  EXPECT_EQ(quote_string("\xed\xa0\x80"), "\"\\xED\\xA0\\x80\"");                               // a surrogate
  EXPECT_EQ(quote_string("\xc0\xaf"), "\"\\xC0\\xAF\"");                                       // overlong '/'
}

TEST(IrPrinter, UnnamedEnumValueIsAnError) {
  Module m = llama_example();
  m.layers[1].retention.policy = static_cast<RetentionPolicy>(42);
  EXPECT_THROW(print_module(m), Error);
}

}  // namespace
}  // namespace kvc::ir
