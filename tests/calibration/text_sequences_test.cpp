// Sequences from UTF-8 text (--text): documents tokenized with BOS, concatenated
// and cut; `kvc eval --text` gives exactly what `--tokens` gives on the same ids;
// calibration on text records its source and its probes run on the same text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "calibration/calibrate.h"
#include "calibration/evaluate.h"
#include "calibration/token_sequences.h"
#include "model/tokenizer.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::calibration {
namespace {

std::string write_scratch(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / ("kvc_text_tests_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The project's held-out stories (data/text/heldout.txt).
std::string source_text() { return testing::source_dir() + "/data/text/heldout.txt"; }

class TextSequences : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path;
    KVC_REQUIRE_MODEL_FILE(path, "stories3M-q80.bin");
    model_ = std::make_unique<model::Model>(model::Model::load(path));
    tok_ = model::Tokenizer::for_model(path, model_->config.vocab);
  }
  std::unique_ptr<model::Model> model_;
  model::Tokenizer tok_;
};

TEST_F(TextSequences, ParagraphsAreDocumentsWithBosConcatenatedAndCut) {
  const std::string first = "Once upon a time, there was a dog.\nHe liked to run.";
  const std::string second = "Zoë saw a big red ball — and she smiled.";
  const std::string path = write_scratch("paragraphs.txt", first + "\r\n\n\n" + second + "\n");
  std::vector<int> want = tok_.encode(first, true);
  const std::vector<int> b = tok_.encode(second, true);
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(tokenize_text_file(path, tok_), want);
  const int length = static_cast<int>(want.size()) / 2;
  const auto seqs = read_text_file(path, tok_, 2, length);
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0], std::vector<int>(want.begin(), want.begin() + length));
  EXPECT_EQ(seqs[1], std::vector<int>(want.begin() + length, want.begin() + 2 * length));
  try {
    read_text_file(path, tok_, 3, length);
    FAIL() << "three sequences cannot fit";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("enough for 2 sequences"), std::string::npos) << e.what();
  }
  // Without blank lines every line is a document.
  const std::string lines = write_scratch("lines.txt", first.substr(0, 34) + "\n" + second + "\n");
  std::vector<int> by_line = tok_.encode(first.substr(0, 34), true);
  by_line.insert(by_line.end(), b.begin(), b.end());
  EXPECT_EQ(tokenize_text_file(lines, tok_), by_line);
}

TEST_F(TextSequences, EvalOnTextEqualsEvalOnItsTokenIds) {
  const std::string text_path = source_text();
  const auto seqs = read_source_sequences(*model_, SequenceSource{"", text_path, ""}, 2, 96);
  std::string ids;
  for (const auto& s : seqs) {
    for (int id : s) ids += std::to_string(id) + " ";
    ids += "\n";
  }
  const std::string token_path = write_scratch("heldout.tokens", ids);
  ir::Module plan = ir::make_uncompressed_module(model_shape(*model_), {96, 1, 32}, 0);
  for (ir::LayerPlan& p : plan.layers) {
    p.key = {4, ir::QuantAxis::PerChannel, 32};
    p.value = {2, ir::QuantAxis::PerToken, 32};
    p.residual = 32;
  }
  EvalOptions o;
  o.sequences = 2;
  o.length = 96;
  o.prompt = 48;
  o.threads = 2;
  o.source.text_file = text_path;
  const EvalReport on_text = evaluate_plan(*model_, plan, o);
  o.source = SequenceSource{token_path, "", ""};
  const EvalReport on_ids = evaluate_plan(*model_, plan, o);
  EXPECT_GT(on_text.kl_mean, 0.0);
  EXPECT_EQ(on_text.kl_mean, on_ids.kl_mean);
  EXPECT_EQ(on_text.kl_max, on_ids.kl_max);
  EXPECT_EQ(on_text.top1_agreement, on_ids.top1_agreement);
  EXPECT_EQ(on_text.ppl_plan, on_ids.ppl_plan);
  EXPECT_EQ(on_text.ppl_full, on_ids.ppl_full);
  // Real text is less predictable to the model than its own samples, but not absurdly so.
  EXPECT_GT(on_text.ppl_full, 1.5);
  EXPECT_LT(on_text.ppl_full, 100.0);
}

TEST_F(TextSequences, CalibrationRecordsItsTextSource) {
  CalibrateOptions o;
  o.sequences = 1;
  o.length = 64;
  o.threads = 1;
  o.source.text_file = source_text();
  EXPECT_EQ(calibration_meta(*model_, o).source, "text:" + source_text());
  EXPECT_EQ(SequenceSource::from_description("text:" + source_text()).text_file, source_text());
  o.source.token_file = "x.tokens";
  EXPECT_THROW(calibrate(*model_, o), Error);  // both files named
}

}  // namespace
}  // namespace kvc::calibration
