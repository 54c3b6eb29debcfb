// `kvc bench`: one JSON object with the bandwidth and a case per format (and per
// int8-dot format), every figure positive and finite; bad options are errors
// naming the option.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "run_command.h"

namespace kvc::testing {
namespace {

namespace fs = std::filesystem;

std::string kvc() { return KVC_CLI_PATH; }

// A small layer shape, so the synthetic caches are quick to build.
fs::path tiny_spec() {
  const fs::path p = fs::temp_directory_path() / ("kvc-bench-tiny-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(p) << "kvc: 1\n"
                      "model: {name: tiny, layers: 2, q_heads: 4, kv_heads: 2, head_dim: 32}\n"
                      "workload: {context: 1024, batch: 1, generate: 64}\n"
                      "budget: {ratio: 0.3}\n"
                      "search:\n"
                      "  precision: {method: uniform, candidates: [K8V8, K4V4, K4V2], group: 32, residual: 64}\n"
                      "target: {backend: llvm-jit}\n";
  return p;
}

bool positive_finite(const nlohmann::json& x) {
  return x.is_number() && std::isfinite(x.get<double>()) && x.get<double>() > 0;
}

// With --int8-dot, every quantized format has a second case with that kernel option.
TEST(BenchCli, JsonHasEveryFormatAndItsInt8DotCaseWithPositiveFiniteFigures) {
  const fs::path spec = tiny_spec();
  auto r = run_command(kvc() + " bench " + shell_quote(spec.string()) +
                       " --contexts 512 --threads 1 --min-time 0.01 --llc-multiple 0.01 --int8-dot --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("kvc bench:"), std::string::npos) << "progress goes to stderr";
  const nlohmann::json j = nlohmann::json::parse(r.out);  // stdout is the JSON object alone
  ASSERT_TRUE(j.is_object());
  EXPECT_TRUE(positive_finite(j["read_bandwidth_gbs"])) << j.dump();
  ASSERT_TRUE(j["isa"].is_string());
  EXPECT_TRUE(std::set<std::string>({"avx512", "avx2", "scalar"}).count(j["isa"].get<std::string>())) << j["isa"];
  ASSERT_TRUE(j["cases"].is_array());
  std::set<std::string> formats, int8_formats;
  for (const auto& c : j["cases"]) {
    SCOPED_TRACE(c.dump());
    const std::string f = c["format"].get<std::string>();
    const bool i8 = f.size() > 3 && f.compare(f.size() - 3, 3, "+i8") == 0;
    EXPECT_EQ(c["int8_dot"].get<bool>(), i8);
    (i8 ? int8_formats : formats).insert(f);
    if (i8) {
      EXPECT_NE(c["kernel"].get<std::string>().find("_i8_"), std::string::npos);
    }
    EXPECT_EQ(c["context"], 512);
    EXPECT_EQ(c["threads"], 1);
    for (const char* field : {"us_per_call", "bytes", "gbs", "fraction_of_bandwidth", "speedup_vs_fp16",
                              "speedup_vs_reference"})
      EXPECT_TRUE(positive_finite(c[field])) << field;
  }
  for (const char* f : {"fp16", "K8V8", "K4V4", "K4V2", "K2V2"}) EXPECT_TRUE(formats.count(f)) << f;
  // The plan's own format (residual 64 differs from the standard formats' 128) is a case too.
  EXPECT_EQ(formats.size(), 6u) << j.dump();
  for (const char* f : {"K8V8+i8", "K4V4+i8", "K4V2+i8", "K2V2+i8"}) EXPECT_TRUE(int8_formats.count(f)) << f;
  EXPECT_FALSE(int8_formats.count("fp16+i8"));
  fs::remove(spec);
}

TEST(BenchCli, BadOptionsAreErrorsNamingTheOption) {
  const fs::path spec = tiny_spec();
  auto r = run_command(kvc() + " bench " + shell_quote(spec.string()) + " --contexts 0 --json");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--contexts"), std::string::npos) << r.err;
  r = run_command(kvc() + " bench " + shell_quote(spec.string()) + " --threads 0");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--threads"), std::string::npos) << r.err;
  r = run_command(kvc() + " bench " + shell_quote(spec.string()) + " --min-time -1");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--min-time"), std::string::npos) << r.err;
  r = run_command(kvc() + " bench " + shell_quote(spec.string()) + " --isa avx9");
  EXPECT_EQ(r.status, 2);
  r = run_command(kvc() + " bench /nonexistent/spec.yaml");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("/nonexistent/spec.yaml"), std::string::npos) << r.err;
  r = run_command(kvc() + " bench --help");
  EXPECT_EQ(r.status, 0);
  for (const char* opt : {"--json", "--contexts", "--threads", "--isa", "--min-time"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  fs::remove(spec);
}

}  // namespace
}  // namespace kvc::testing
