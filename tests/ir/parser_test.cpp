#include <gtest/gtest.h>

#include <random>

#include "ir/parser.h"
#include "ir/printer.h"
#include "random_modules.h"
#include "support/diagnostics.h"

namespace kvc::ir {
namespace {

const std::string kHeader =
    "module \"m\" {\n"
    "  model layers=1 q_heads=1 kv_heads=1 head_dim=8 rope_theta=10000 cache=fp16\n"
    "  workload context=16 batch=1 generate=0\n"
    "  budget bytes=0\n"
    "}\n";
// Line 6 of kHeader + this is the layer line.
const std::string kLayer = "layer 0: k=fp16 v=fp16 residual=0 keep=full rank=none\n";

TEST(IrParser, ReadsTheDocumentedForm) {
  const Module m = parse_module(
      "; kvc plan v1\n"
      "module \"Llama-3.1-8B\" {\n"
      "  model    layers=2 q_heads=32 kv_heads=8 head_dim=128 rope_theta=500000 cache=fp16\n"
      "  workload context=32768 batch=4 generate=512\n"
      "  budget   bytes=4294967296\n"
      "}\n"
      "layer 0: k=int4/per-channel/g32 v=int2/per-token/g32 residual=128 "
      "keep=streamingllm(budget=2048,sink=4,window=32) rank=none\n"
      "layer 1: k=fp16 v=fp16 residual=0 keep=full rank=64/cross-layer(group=0,source=prefill)\n",
      "llama.plan");
  EXPECT_EQ(m.model, (ModelShape{"Llama-3.1-8B", 2, 32, 8, 128, 500000.0, DType::F16}));
  EXPECT_EQ(m.workload, (Workload{32768, 4, 512}));
  EXPECT_EQ(m.budget_bytes, 4294967296LL);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].key, (QuantFormat{4, QuantAxis::PerChannel, 32}));
  EXPECT_EQ(m.layers[0].value, (QuantFormat{2, QuantAxis::PerToken, 32}));
  EXPECT_EQ(m.layers[0].residual, 128);
  EXPECT_EQ(m.layers[0].retention, (Retention{RetentionPolicy::StreamingLLM, 2048, 4, 32, 0, 0.0}));
  EXPECT_EQ(m.layers[0].lowrank, LowRank{});
  EXPECT_EQ(m.layers[1].index, 1);
  EXPECT_EQ(m.layers[1].key, LayerPlan{}.key);
  EXPECT_EQ(m.layers[1].value, LayerPlan{}.value);
  EXPECT_EQ(m.layers[1].lowrank, (LowRank{64, BasisSharing::CrossLayer, 0, BasisSource::Prefill}));
}

TEST(IrParser, IgnoresCommentsBlankLinesSpacingCrlfAndOrder) {
  const Module m = parse_module(
      "\n; a hand-edited plan\r\n\r\n"
      "module \"x\" {   ; header\r\n"
      "\tbudget bytes=10\n"
      "\n"
      "  workload generate=1 batch=2 context=64\n"
      "  model cache=bf16 rope_theta=1e6 head_dim=64 kv_heads=2 q_heads=4 layers=1\n"
      "}\n"
      "\n"
      "layer 0:   rank=16/layer   keep=snapkv(pool=3,budget=40)  residual=32 v=fp16 k=int3/per-token/g16 ; why\n"
      "; trailing comment without newline");
  EXPECT_EQ(m.model, (ModelShape{"x", 1, 4, 2, 64, 1e6, DType::BF16}));
  EXPECT_EQ(m.workload, (Workload{64, 2, 1}));
  EXPECT_EQ(m.budget_bytes, 10);
  ASSERT_EQ(m.layers.size(), 1u);
  const LayerPlan& p = m.layers[0];
  EXPECT_EQ(p.key, (QuantFormat{3, QuantAxis::PerToken, 16}));
  EXPECT_EQ(p.residual, 32);
  // Parameters left out of the parentheses keep their defaults.
  EXPECT_EQ(p.retention, (Retention{RetentionPolicy::SnapKV, 40, 0, 0, 3, 0.0}));
  EXPECT_EQ(p.lowrank, (LowRank{16, BasisSharing::PerLayer, -1, BasisSource::Prefill}));
}

TEST(IrParser, StringEscapes) {
  const Module m = parse_module(
      "module \"q\\\"b\\\\s\\n\\t\\r\\x00\\xff\xe6\x97\xa5\" {\n"
      "  model layers=0 q_heads=1 kv_heads=1 head_dim=8 rope_theta=1 cache=fp32\n"
      "  workload context=1 batch=1 generate=0\n"
      "  budget bytes=0\n"
      "}\n");
  EXPECT_EQ(m.model.name, std::string("q\"b\\s\n\t\r") + std::string(1, '\0') + "\xff\xe6\x97\xa5");
  EXPECT_TRUE(m.layers.empty());
}

struct BadInput {
  std::string text;
  int line;
  int column;
  std::string field;
  std::string message_part;
};

void PrintTo(const BadInput& b, std::ostream* os) { *os << "\n" << b.text; }

class IrParserErrors : public ::testing::TestWithParam<BadInput> {};

TEST_P(IrParserErrors, PointAtTheOffendingToken) {
  const BadInput& b = GetParam();
  try {
    parse_module(b.text, "bad.plan");
    FAIL() << "parsed without error";
  } catch (const Error& e) {
    EXPECT_EQ(e.location().file, "bad.plan");
    EXPECT_EQ(e.location().line, b.line) << e.what();
    EXPECT_EQ(e.location().column, b.column) << e.what();
    EXPECT_EQ(e.field(), b.field) << e.what();
    EXPECT_NE(e.message().find(b.message_part), std::string::npos) << e.what();
  }
}

std::string header_with(const std::string& from, const std::string& to) {
  std::string h = kHeader;
  h.replace(h.find(from), from.size(), to);
  return h;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, IrParserErrors,
    ::testing::Values(
        BadInput{"", 1, 1, "", "expected the module header"},
        BadInput{"\n\n  ; only a comment\n", 4, 1, "", "expected the module header"},
        BadInput{kLayer, 1, 1, "", "before the first layer"},
        BadInput{"module m {\n", 1, 8, "module", "expected the model name as a quoted string"},
        BadInput{"module \"abc {\n", 1, 8, "", "unterminated string"},
        BadInput{"module \"a\\qb\" {\n", 1, 10, "", "unknown escape"},
        BadInput{"module \"a\\x4\" {\n", 1, 10, "", "two hex digits"},
        BadInput{"module \"\xe6\x97\xa5\xe6\x9c\xac\" { x\n", 1, 15, "module", "expected end of line after '{'"},
        BadInput{header_with("layers=1", "layers=x"), 2, 16, "model.layers", "expected an integer, found 'x'"},
        BadInput{header_with("head_dim=8", "head_dim=99999999999"), 2, 48, "model.head_dim",
                 "out of range for a 32-bit integer"},
        BadInput{header_with("cache=fp16", "cache=fp8"), 2, 73, "model.cache", "did you mean 'fp16'?"},
        BadInput{header_with("rope_theta=10000", "rope_theta=1e999"), 2, 61, "model.rope_theta",
                 "out of the range of a double"},
        BadInput{header_with(" cache=fp16", ""), 2, 66, "model.cache", "missing 'cache='"},
        BadInput{header_with("q_heads=1", "q_heads=1 layers=2"), 2, 28, "model.layers", "given twice"},
        BadInput{header_with("kv_heads=1", "kv_head=1"), 2, 28, "model.kv_head", "did you mean 'kv_heads'?"},
        BadInput{header_with("layers=1", "layers 1"), 2, 16, "model.layers", "expected '=' after 'layers'"},
        BadInput{header_with("  budget bytes=0\n", ""), 4, 1, "budget", "missing the 'budget' line"},
        BadInput{header_with("  budget bytes=0\n", "  budget bytes=0\n  budget bytes=1\n"), 5, 3, "budget",
                 "given twice"},
        BadInput{header_with("  workload", "  workloud"), 3, 3, "module", "did you mean 'workload'?"},
        BadInput{header_with("}\n", ""), 5, 1, "module", "expected '}' closing the module block opened at line 1"},
        BadInput{kHeader + kHeader, 6, 1, "", "a file holds one module"},
        BadInput{kHeader + "layer 0 k=fp16\n", 6, 9, "layer", "expected ':' after the layer index"},
        BadInput{kHeader + "layer 0: k=int4/per-row/g32 v=fp16 residual=0 keep=full rank=none\n", 6, 17,
                 "layer 0: k.axis", "expected one of per-channel, per-token"},
        BadInput{kHeader + "layer 0: k=int4/per-channel/32 v=fp16 residual=0 keep=full rank=none\n", 6, 29,
                 "layer 0: k.group", "expected a group size such as g32"},
        BadInput{kHeader + "layer 0: k=int4 v=fp16 residual=0 keep=full rank=none\n", 6, 17, "layer 0: k",
                 "expected '/' and the quantization axis after 'int4'"},
        BadInput{kHeader + "layer 0: k=int/per-channel/g32 v=fp16 residual=0 keep=full rank=none\n", 6, 12,
                 "layer 0: k.bits", "expected a bit width after 'int'"},
        BadInput{kHeader + "layer 0: k=fp16 v=fp16 residual=0 keep=h2o(budget=10,sink=1 rank=none\n", 6, 61,
                 "layer 0: keep.sink", "expected ',' or ')'"},
        BadInput{kHeader + "layer 0: k=fp16 v=fp16 residual=0 keep=h2o(budget=10,pool=1,budget=3) rank=none\n",
                 6, 61, "layer 0: keep.budget", "given twice"},
        BadInput{kHeader + "layer 0: k=fp16 v=fp16 residual=0 keep=full rank=64/shared\n", 6, 53,
                 "layer 0: rank.sharing", "expected one of none, layer, cross-layer"},
        BadInput{kHeader + "layer 0: k=fp16 v=fp16 residual=0 keep=full\n", 6, 44, "layer 0: rank", "missing 'rank='"},
        BadInput{kHeader + "layer 0: k=fp16 v=fp16 residual=0 keep=full rank=none @\n", 6, 55, "",
                 "unexpected character '@'"},
        BadInput{kHeader + "layer 0: k=fp16 v=fp16 residual=-1.5 keep=full rank=none\n", 6, 33, "layer 0: residual",
                 "expected an integer, found '-1.5'"},
        BadInput{kHeader + "layer 0: k=int4/per-token/g8/symetric v=fp16 residual=0 keep=full rank=none\n", 6, 30,
                 "layer 0: k.scheme", "did you mean 'symmetric'?"},
        BadInput{kHeader + "layer 0: k=fp16 v=int2/per-token/g8/lloyd-max/walsh residual=0 keep=full rank=none\n", 6,
                 47, "layer 0: v.rotation", "expected one of none, hadamard"},
        BadInput{kHeader + "layer 0: k=fp16 v=int2/per-token/g8/lloyd-max/hadamard(seed=-1) residual=0 keep=full "
                           "rank=none\n",
                 6, 61, "layer 0: v.rotation.seed", "expected an integer, found '-1'"}));

TEST(IrParser, ReadsRotatedAndCodebookFormats) {
  const Module m = parse_module(kHeader +
                                "layer 0: k=int4/per-token/g8/symmetric/hadamard(seed=4294967295) "
                                "v=int3/per-token/g8/lloyd-max/hadamard(seed=7) residual=8 keep=full rank=none\n");
  ASSERT_EQ(m.layers.size(), 1u);
  EXPECT_EQ(m.layers[0].key,
            (QuantFormat{4, QuantAxis::PerToken, 8, QuantScheme::Symmetric, Rotation::Hadamard, 4294967295u}));
  EXPECT_EQ(m.layers[0].value, (QuantFormat{3, QuantAxis::PerToken, 8, QuantScheme::LloydMax, Rotation::Hadamard, 7}));
  // KIVI formats keep their short form; others print every part.
  EXPECT_NE(print_module(m).find("k=int4/per-token/g8/symmetric/hadamard(seed=4294967295) "
                                 "v=int3/per-token/g8/lloyd-max/hadamard(seed=7)"),
            std::string::npos);
}

// Damaged printouts either still parse or fail with a located kvc::Error; nothing else escapes.
TEST(IrParser, MutatedTextFailsCleanly) {
  const std::string alphabet = "=(),/:{}\"\\;\n -0123456789gx\xc3\xff";
  int errors = 0;
  for (int seed = 0; seed < 2000; ++seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::string text = print_module(testing::random_valid_module(rng));
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % (text.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: text.insert(at, 1, c); break;
        case 1: if (at < text.size()) text.erase(at, 1); break;
        default: if (at < text.size()) text[at] = c; break;
      }
    }
    try {
      parse_module(text, "mutated.plan");
    } catch (const Error& e) {
      ++errors;
      EXPECT_GE(e.location().line, 1) << e.what();
      EXPECT_GE(e.location().column, 1) << e.what();
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": not a kvc::Error: " << e.what() << "\n" << text;
    }
  }
  EXPECT_GT(errors, 1000);  // most damage is detected
}

TEST(IrParser, MissingFileIsAnError) {
  try {
    read_module_file("/nonexistent/dir/plan.kvc");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.location().file, "/nonexistent/dir/plan.kvc");
    EXPECT_NE(e.message().find("cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace kvc::ir
