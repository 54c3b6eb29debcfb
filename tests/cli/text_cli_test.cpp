// `kvc generate` and the text options of `kvc calibrate/eval` on stories3M, run as
// a user runs them; corrupt model and tokenizer files exit 2 naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "run_command.h"
#include "test_support/test_data.h"

namespace kvc::testing {
namespace {

namespace fs = std::filesystem;

std::string kvc() { return KVC_CLI_PATH; }

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("kvc-text-cli-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void copy_prefix(const std::string& from, const fs::path& to, std::size_t bytes) {
  std::ifstream in(from, std::ios::binary);
  std::vector<char> data(bytes);
  in.read(data.data(), static_cast<std::streamsize>(bytes));
  std::ofstream(to, std::ios::binary).write(data.data(), in.gcount());
}

class Stories3MCli : public ::testing::Test {
 protected:
  void SetUp() override {
    KVC_REQUIRE_MODEL_FILE(model_, "stories3M-q80.bin");
    KVC_REQUIRE_MODEL_FILE(tokenizer_, "tok4096.bin");
  }
  std::string model_, tokenizer_;
};

TEST_F(Stories3MCli, GreedyTextFromBosIsTheReferenceStory) {
  const auto r = run_command(kvc() + " generate --model " + shell_quote(model_) + " --prompt '' -n 40 --temperature 0");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind(" Once upon a time, there was a little girl named Lily.", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cache "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("llvm-jit"), std::string::npos) << r.err;
}

TEST_F(Stories3MCli, CompareMarksWhereAPlanDiverges) {
  const fs::path dir = fresh_dir("compare");
  const fs::path spec = dir / "k2v2.yaml";
  std::ofstream(spec) << "kvc: 1\nmodel: {from: " << model_ << "}\nworkload: {context: 512, batch: 1}\n"
                      << "budget: {ratio: 0.3}\nsearch:\n  precision: {method: uniform, candidates: [K2V2], residual: 32}\n";
  const auto r = run_command(kvc() + " generate --model " + shell_quote(model_) + " --spec " +
                             shell_quote(spec.string()) + " --prompt 'Tom had a red ball.' -n 60 --compare");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto fp16 = r.out.find("--- fp16 cache ---\nTom had a red ball.");
  const auto plan = r.out.find("--- plan cache ---\nTom had a red ball.");
  ASSERT_NE(fp16, std::string::npos) << r.out;
  ASSERT_NE(plan, std::string::npos) << r.out;
  EXPECT_LT(fp16, plan);
  // Either the texts agree to the end or the plan's part carries the one marker.
  const bool identical = r.out.find("--- identical") != std::string::npos;
  const auto marker = r.out.find("[>>]");
  if (identical) {
    EXPECT_EQ(marker, std::string::npos) << r.out;
  } else {
    EXPECT_GT(marker, plan) << r.out;
    EXPECT_NE(r.out.find("first divergence at generated token"), std::string::npos) << r.out;
  }
  EXPECT_NE(r.err.find("x smaller than fp16"), std::string::npos) << r.err;
}

TEST_F(Stories3MCli, TruncatedModelOrTokenizerExitsTwoNamingTheFile) {
  const fs::path dir = fresh_dir("corrupt");
  const std::size_t model_size = fs::file_size(model_), tok_size = fs::file_size(tokenizer_);
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{40}, std::size_t{255}, std::size_t{300},
                          model_size / 2, model_size - 1}) {
    const fs::path m = dir / "stories3M-q80.bin";
    copy_prefix(model_, m, cut);
    fs::copy_file(tokenizer_, dir / "tok4096.bin", fs::copy_options::overwrite_existing);
    for (const std::string cmd : {" generate --prompt hi --model ", " calibrate -o /dev/null --model "}) {
      const auto r = run_command(kvc() + cmd + shell_quote(m.string()));
      EXPECT_EQ(r.status, 2) << cut << ": " << r.err;
      EXPECT_NE(r.err.find(m.string()), std::string::npos) << cut << ": " << r.err;
    }
  }
  fs::copy_file(model_, dir / "stories3M-q80.bin", fs::copy_options::overwrite_existing);
  for (std::size_t cut : {std::size_t{0}, std::size_t{2}, std::size_t{9}, tok_size / 2, tok_size - 1}) {
    copy_prefix(tokenizer_, dir / "tok4096.bin", cut);
    const auto r = run_command(kvc() + " generate --prompt hi --model " + shell_quote((dir / "stories3M-q80.bin").string()));
    EXPECT_EQ(r.status, 2) << cut << ": " << r.err;
    EXPECT_NE(r.err.find((dir / "tok4096.bin").string()), std::string::npos) << cut << ": " << r.err;
  }
}

TEST_F(Stories3MCli, EvalReadsTextAndRejectsTwoSources) {
  const std::string text = source_dir() + "/data/text/heldout.txt";
  const auto r = run_command(kvc() + " eval --json --model " + shell_quote(model_) +
                             " --spec " + shell_quote(source_dir() + "/specs/stories3M.yaml") + " --text " +
                             shell_quote(text) + " --sequences 1 --length 64");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"kl_mean\""), std::string::npos) << r.out;
  const auto both = run_command(kvc() + " eval --model " + shell_quote(model_) + " --spec " +
                                shell_quote(source_dir() + "/specs/stories3M.yaml") + " --text " + shell_quote(text) +
                                " --tokens x.tokens");
  EXPECT_EQ(both.status, 2);
  const auto bad = run_command(kvc() + " eval --model " + shell_quote(model_) + " --spec " +
                               shell_quote(source_dir() + "/specs/stories3M.yaml") + " --text /nonexistent.txt");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("/nonexistent.txt"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace kvc::testing
