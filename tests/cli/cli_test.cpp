// End-to-end tests of the `kvc` executable.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_command.h"
#include "test_support/test_data.h"

namespace kvc::testing {
namespace {

namespace fs = std::filesystem;

std::string kvc() { return KVC_CLI_PATH; }
std::string spec(const std::string& name) { return source_dir() + "/specs/" + name; }

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("kvc-cli-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

TEST(Cli, HelpIsTrue) {
  auto r = run_command(kvc() + " --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("compile"), std::string::npos);
  r = run_command(kvc() + " compile --help");
  EXPECT_EQ(r.status, 0);
  for (const char* opt : {"--emit", "--json", "--print-after-all", "--time-passes", "-o", "-p"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  for (const char* pass : {"uniform", "estimate", "legalize"}) EXPECT_NE(r.out.find(pass), std::string::npos) << pass;
}

TEST(Cli, CompilesEverySpecIntoAPlanThatFits) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(source_dir() + "/specs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++seen;
    auto r = run_command(kvc() + " compile --json " + shell_quote(entry.path().string()));
    ASSERT_EQ(r.status, 0) << entry.path() << "\n" << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["fits"].get<bool>()) << entry.path();
    EXPECT_LE(j["total_bytes"].get<std::int64_t>(), j["budget_bytes"].get<std::int64_t>()) << entry.path();
    std::int64_t sum = 0;
    for (const auto& l : j["layers"]) sum += l["bytes"].get<std::int64_t>();
    EXPECT_EQ(sum, j["total_bytes"].get<std::int64_t>()) << entry.path();
    EXPECT_EQ(static_cast<int>(j["layers"].size()), j["model"]["layers"].get<int>());
  }
  EXPECT_GE(seen, 5);
}

TEST(Cli, ReportTableHasTotalsAndSaysNoCalibration) {
  auto r = run_command(kvc() + " compile " + shell_quote(spec("llama-3.1-8b.yaml")));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* s : {"layer", "K bits", "V bits", "total bytes:", "budget:", "fp16 cache:", "compression:",
                        "no calibration"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(Cli, WritesThePlanAndItReadsBack) {
  const fs::path dir = fresh_dir("out");
  auto r = run_command(kvc() + " compile " + shell_quote(spec("llama-3.1-8b.yaml")) + " -o " + shell_quote(dir.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir / "plan.kvc"));
  ASSERT_TRUE(fs::exists(dir / "plan.json"));
  auto emitted = run_command(kvc() + " compile --emit plan " + shell_quote(spec("llama-3.1-8b.yaml")));
  std::ifstream in(dir / "plan.kvc");
  std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, emitted.out);
  fs::remove_all(dir);
}

TEST(Cli, PrintAfterAllAndTimePasses) {
  auto r = run_command(kvc() + " compile --print-after-all --time-passes -p uniform,estimate,legalize " +
                       shell_quote(spec("llama-3.1-8b.yaml")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("IR Dump After uniform"), std::string::npos);
  EXPECT_NE(r.err.find("IR Dump After legalize"), std::string::npos);
  EXPECT_NE(r.err.find("Pass execution timing report"), std::string::npos);
}

TEST(Cli, BadInputExitsTwoWithOneLineAndNoOutputFiles) {
  const fs::path dir = fresh_dir("bad");
  const fs::path bad = fs::temp_directory_path() / ("kvc-cli-bad-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(bad);
    out << "kvc: 1\nmodel:\n  name: x\n  layers: 4\n  q_heads: 8\n  kv_head: 2\n  head_dim: 64\n"
           "workload: {context: 1024, batch: 1}\nbudget: {ratio: 0.5}\n";
  }
  auto r = run_command(kvc() + " compile " + shell_quote(bad.string()) + " -o " + shell_quote(dir.string()));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(bad.string() + ":6:3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kv_heads"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "plan.kvc"));
  fs::remove(bad);

  r = run_command(kvc() + " compile /nonexistent/spec.yaml");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("/nonexistent/spec.yaml"), std::string::npos);

  r = run_command(kvc() + " compile -p uniform,estimat " + shell_quote(spec("llama-3.1-8b.yaml")));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("did you mean 'estimate'?"), std::string::npos) << r.err;

  r = run_command(kvc() + " compile --emit nonsense " + shell_quote(spec("llama-3.1-8b.yaml")));
  EXPECT_EQ(r.status, 2);
}

TEST(Cli, BudgetBelowTheFormatNamedOnTheCommandLinePointsAtTheSpec) {
  auto r = run_command(kvc() + " compile -p " + shell_quote("uniform<fp16>,legalize") + " " + shell_quote(spec("llama-3.1-8b.yaml")));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("llama-3.1-8b.yaml:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("budget"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("over by"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kvc::testing
