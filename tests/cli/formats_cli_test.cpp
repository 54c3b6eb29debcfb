// `kvc compile` with rotated, per-token scale and codebook formats: the plan text and
// the JSON report describe the same formats, and --emit obj refuses them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ir/parser.h"
#include "ir/plan.h"
#include "run_command.h"
#include "test_support/test_data.h"

namespace kvc::testing {
namespace {

namespace fs = std::filesystem;

std::string kvc() { return KVC_CLI_PATH; }

std::string write_spec(const std::string& name, const std::string& candidates) {
  const fs::path path = fs::temp_directory_path() / ("kvc-formats-" + name + "-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << "kvc: 1\n"
                         "model: {layers: 3, q_heads: 8, kv_heads: 2, head_dim: 32}\n"
                         "workload: {context: 256}\n"
                         "budget: {ratio: 0.5}\n"
                         "target: {backend: reference}\n"
                         "search:\n"
                         "  precision: {candidates: ["
                      << candidates << "], residual: 32, seed: 77}\n";
  return path.string();
}

// The IR format a plan.json "key"/"value" object describes.
ir::QuantFormat from_json(const nlohmann::json& j) {
  ir::QuantFormat f;
  f.bits = j.at("bits").get<int>();
  f.axis = j.at("axis") == "per-channel" ? ir::QuantAxis::PerChannel : ir::QuantAxis::PerToken;
  f.group = j.at("group").get<int>();
  const std::string scheme = j.at("scheme");
  f.scheme = scheme == "minmax" ? ir::QuantScheme::MinMax
             : scheme == "symmetric" ? ir::QuantScheme::Symmetric
                                     : ir::QuantScheme::LloydMax;
  f.rotation = j.at("rotation") == "hadamard" ? ir::Rotation::Hadamard : ir::Rotation::None;
  f.seed = j.at("seed").get<std::uint32_t>();
  return f;
}

TEST(FormatsCli, PlanTextAndJsonDescribeTheSameFormats) {
  for (const std::string pair : {"K4trV2cr", "K4V3cr", "K8ar", "K2tV2"}) {
    const std::string candidates = pair == "K8ar" ? "K8arV4trg16" : pair;
    const std::string spec = write_spec(pair, candidates);
    auto text = run_command(kvc() + " compile --emit plan " + shell_quote(spec));
    ASSERT_EQ(text.status, 0) << text.err;
    const ir::Module m = ir::parse_module(text.out, "plan.kvc");
    auto report = run_command(kvc() + " compile --json " + shell_quote(spec));
    ASSERT_EQ(report.status, 0) << report.err;
    const auto j = nlohmann::json::parse(report.out);
    ASSERT_EQ(j["layers"].size(), m.layers.size());
    for (std::size_t l = 0; l < m.layers.size(); ++l) {
      const auto& jl = j["layers"][l];
      EXPECT_EQ(jl["precision"], candidates) << l;
      EXPECT_EQ(from_json(jl["key"]), m.layers[l].key) << l;
      EXPECT_EQ(from_json(jl["value"]), m.layers[l].value) << l;
    }
    if (pair != "K4V3cr") {
      EXPECT_EQ(m.layers[0].key.rotation, pair == "K2tV2" ? ir::Rotation::None : ir::Rotation::Hadamard) << pair;
      EXPECT_EQ(m.layers[0].key.seed, pair == "K2tV2" ? 0u : 77u) << pair;
    }
    fs::remove(spec);
  }
}

TEST(FormatsCli, EmitObjRefusesFormatsWithoutGeneratedKernels) {
  const std::string spec = write_spec("obj", "K4V2cr");
  const fs::path dir = fs::temp_directory_path() / ("kvc-formats-obj-" + std::to_string(::getpid()));
  auto r = run_command(kvc() + " compile --emit obj -o " + shell_quote(dir.string()) + " " + shell_quote(spec));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("layers[0]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("lloyd-max hadamard-rotated has no generated kernel"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "kernels.o"));
  fs::remove(spec);
  fs::remove_all(dir);
}

TEST(FormatsCli, BadPairsInTheSpecAreErrorsAtTheCandidate) {
  const std::string spec = write_spec("bad", "K4V2cr, K8cV4");
  auto r = run_command(kvc() + " compile " + shell_quote(spec));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("search.precision.candidates[1]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the Lloyd-Max codebook has 2, 3 or 4 bits"), std::string::npos) << r.err;
  fs::remove(spec);
}

}  // namespace
}  // namespace kvc::testing
