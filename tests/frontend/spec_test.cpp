// Good specs: the examples in specs/, budgets by bytes and by ratio, units,
// defaults, model.from, recorded locations and path resolution.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "frontend/hf_config.h"
#include "frontend/spec.h"
#include "frontend/spec_limits.h"
#include "ir/layout.h"
#include "test_support/test_data.h"

namespace kvc::frontend {
namespace {

namespace fs = std::filesystem;

fs::path specs_dir() { return fs::path(testing::source_dir()) / "specs"; }
fs::path fixtures_dir() { return fs::path(testing::source_dir()) / "tests" / "frontend" / "fixtures"; }

// A spec text in the fixtures folder's frame, so relative paths resolve there.
Spec parse_in_fixtures(const std::string& text) { return parse_spec(text, (fixtures_dir() / "inline.yaml").string()); }

const char* kStories =
    "kvc: 1\n"
    "model: {layers: 5, q_heads: 8, kv_heads: 4, head_dim: 8}\n"
    "workload: {context: 512}\n";

std::vector<std::string> example_specs() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(specs_dir()))
    if (e.path().extension() == ".yaml") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

class ExampleSpec : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleSpec, LoadsWithABudgetAboveTheSmallestPlan) {
  if (GetParam() == "stories260K-file") {
    std::string model;
    KVC_REQUIRE_MODEL_FILE(model, "stories260K.bin");
  }
  const Spec s = load_spec((specs_dir() / (GetParam() + ".yaml")).string());
  EXPECT_FALSE(s.model.name.empty());
  EXPECT_EQ(s.model.q_heads % s.model.kv_heads, 0);
  EXPECT_LT(s.workload.generate, s.workload.context);
  const ir::Module m = s.to_module();
  EXPECT_GE(s.budget_bytes, ir::total_bytes(ir::smallest_plan(m, s.search.precision.group)));
  EXPECT_LT(s.budget_bytes, ir::fp16_bytes(m)) << "an example should need compression";
}

INSTANTIATE_TEST_SUITE_P(Specs, ExampleSpec, ::testing::ValuesIn(example_specs()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           std::replace_if(n.begin(), n.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
                           return n;
                         });

TEST(ExampleSpecs, CoverTheModelsOfTheIssue) {
  const auto names = example_specs();
  for (const char* want : {"llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "mistral-7b-v0.3", "stories260K", "stories260K-file"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
}

// The inline shapes of the examples are the published configs' shapes.
TEST(ExampleSpecs, ShapesMatchThePublishedConfigs) {
  const std::pair<const char*, const char*> pairs[] = {{"llama-3.1-8b", "Llama-3.1-8B"},
                                                       {"llama-3.1-70b", "Llama-3.1-70B"},
                                                       {"qwen2.5-7b", "Qwen2.5-7B"},
                                                       {"mistral-7b-v0.3", "Mistral-7B-v0.3"}};
  for (const auto& [spec, config] : pairs) {
    SCOPED_TRACE(spec);
    const Spec s = load_spec((specs_dir() / (std::string(spec) + ".yaml")).string());
    const ModelFileInfo hf = read_hf_config((fixtures_dir() / "hf" / config / "config.json").string());
    EXPECT_EQ(s.model.layers, hf.shape.layers);
    EXPECT_EQ(s.model.q_heads, hf.shape.q_heads);
    EXPECT_EQ(s.model.kv_heads, hf.shape.kv_heads);
    EXPECT_EQ(s.model.head_dim, hf.shape.head_dim);
    EXPECT_EQ(s.model.rope_theta, hf.shape.rope_theta);
    EXPECT_LE(s.workload.context, hf.context);
  }
}

TEST(ExampleSpecs, Llama8BMatchesTheDesignExample) {
  const Spec s = load_spec((specs_dir() / "llama-3.1-8b.yaml").string());
  EXPECT_EQ(s.model.name, "Llama-3.1-8B-Instruct");
  EXPECT_EQ(s.model.cache_dtype, ir::DType::BF16);
  EXPECT_EQ(s.workload, (ir::Workload{32768, 4, 512}));
  EXPECT_EQ(s.budget_bytes, std::int64_t{4} << 30);
  EXPECT_FALSE(s.budget_ratio.has_value());
  EXPECT_EQ(ir::fp16_bytes(s.to_module()), std::int64_t{16} << 30);
  EXPECT_EQ(s.search.precision.method, "kvtuner");
  EXPECT_EQ(s.search.precision.candidates, (std::vector<std::string>{"K8V8", "K8V4", "K4V4", "K4V2", "K2V2"}));
  EXPECT_EQ(s.search.retention.method, "cake");
  EXPECT_EQ(s.search.lowrank.method, "xkv");
  EXPECT_EQ(s.search.lowrank.group_layers, 4);
  EXPECT_TRUE(s.search.joint);
  EXPECT_EQ(s.target.backend, "llvm-jit");
  EXPECT_EQ(s.target.threads, 2);
}

TEST(ExampleSpecs, StoriesInlineAndFromTheCheckpointAgree) {
  std::string model;
  KVC_REQUIRE_MODEL_FILE(model, "stories260K.bin");
  const Spec inl = load_spec((specs_dir() / "stories260K.yaml").string());
  const Spec file = load_spec((specs_dir() / "stories260K-file.yaml").string());
  EXPECT_EQ(inl.model, file.model);
  EXPECT_EQ(inl.model, (ir::ModelShape{"stories260K", 5, 8, 4, 8, 10000.0, ir::DType::F16}));
  EXPECT_EQ(file.model_context, 512);
  EXPECT_TRUE(fs::equivalent(file.model_from, model));
  EXPECT_EQ(inl.budget_bytes, file.budget_bytes);
  // 5 layers x 4 KV heads x 512 tokens x 8 channels x (K+V) x 2 bytes, a quarter of it.
  EXPECT_EQ(inl.budget_bytes, 5 * 4 * 512 * 8 * 2 * 2 / 4);
  EXPECT_EQ(inl.target.backend, "reference");
}

TEST(Spec, RatioIsAFractionOfTheFp16Cache) {
  const Spec s = parse_in_fixtures(std::string(kStories) + "budget: {ratio: 0.3}\n");
  ASSERT_TRUE(s.budget_ratio.has_value());
  EXPECT_DOUBLE_EQ(*s.budget_ratio, 0.3);
  EXPECT_EQ(s.budget_bytes, 98304);
  const Spec one = parse_in_fixtures(std::string(kStories) + "budget: {ratio: 1}\n");
  EXPECT_EQ(one.budget_bytes, 327680);
  const Spec bytes = parse_in_fixtures(std::string(kStories) + "budget: {bytes: 98304}\n");
  EXPECT_EQ(bytes.budget_bytes, 98304);
  EXPECT_FALSE(bytes.budget_ratio.has_value());
}

TEST(Spec, BudgetUnits) {
  const std::string llama =
      "kvc: 1\nmodel: {layers: 32, q_heads: 32, kv_heads: 8, head_dim: 128}\nworkload: {context: 32768, batch: 4}\n";
  const std::pair<const char*, std::int64_t> cases[] = {
      {"4GiB", std::int64_t{4} << 30}, {"512MiB", std::int64_t{512} << 20}, {"1.5GB", 1500000000},
      {"2 GiB", std::int64_t{2} << 30}, {"'3GiB'", std::int64_t{3} << 30},  {"1TiB", std::int64_t{1} << 40},
      {"600000000", 600000000},          {"700MB", 700000000}};
  for (const auto& [text, bytes] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(parse_in_fixtures(llama + "budget: {bytes: " + text + "}\n").budget_bytes, bytes);
  }
}

TEST(Spec, DefaultsForEverythingLeftOut) {
  const Spec s = parse_spec(std::string(kStories) + "budget: {ratio: 0.5}\n", "some/dir/tiny.yaml");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.model.name, "tiny");  // the spec's file name
  EXPECT_EQ(s.model.rope_theta, 10000.0);
  EXPECT_EQ(s.model.cache_dtype, ir::DType::F16);
  EXPECT_EQ(s.workload, (ir::Workload{512, 1, 0}));
  EXPECT_TRUE(s.model_from.empty());
  EXPECT_EQ(s.model_context, 0);
  EXPECT_TRUE(s.calibration_stats.empty());
  EXPECT_EQ(s.search.precision.method, "uniform");
  EXPECT_EQ(s.search.precision.group, 32);
  EXPECT_EQ(s.search.precision.residual, 128);
  EXPECT_EQ(s.search.retention.method, "none");
  EXPECT_EQ(s.search.lowrank.method, "none");
  EXPECT_FALSE(s.search.joint);
  EXPECT_TRUE(s.search.pipeline.empty());
  EXPECT_EQ(s.target.backend, "llvm-jit");
  EXPECT_EQ(s.target.cpu, "native");
  EXPECT_EQ(s.target.threads, 1);
}

TEST(Spec, EverySectionRead) {
  const Spec s = parse_in_fixtures(std::string(kStories) +
                                   "budget: {bytes: 100KiB}\n"
                                   "search:\n"
                                   "  precision: {method: none, group: 8, residual: 16, candidates: [K16V16, K3V2]}\n"
                                   "  retention: {method: snapkv, sink: 2, window: 16, pool: 5, gamma: 0.5}\n"
                                   "  lowrank: {method: shadowkv, group_layers: 5, energy: 0.9, basis: prefill}\n"
                                   "  joint: false\n"
                                   "  pipeline: uniform,estimate,legalize\n"
                                   "target: {backend: llvm-aot, cpu: znver4, threads: 256}\n");
  EXPECT_EQ(s.search.precision.method, "none");
  EXPECT_EQ(s.search.precision.group, 8);
  EXPECT_EQ(s.search.precision.residual, 16);
  EXPECT_EQ(s.search.precision.candidates, (std::vector<std::string>{"K16V16", "K3V2"}));
  EXPECT_EQ(s.search.retention.method, "snapkv");
  EXPECT_EQ(s.search.retention.sink, 2);
  EXPECT_EQ(s.search.retention.window, 16);
  EXPECT_EQ(s.search.retention.pool, 5);
  EXPECT_EQ(s.search.retention.gamma, 0.5);
  EXPECT_EQ(s.search.lowrank.method, "shadowkv");
  EXPECT_EQ(s.search.lowrank.group_layers, 5);
  EXPECT_EQ(s.search.lowrank.energy, 0.9);
  EXPECT_EQ(s.search.pipeline, "uniform,estimate,legalize");
  EXPECT_EQ(s.target.backend, "llvm-aot");
  EXPECT_EQ(s.target.cpu, "znver4");
  EXPECT_EQ(s.target.threads, 256);
}

TEST(Spec, ModelFromConfigJson) {
  const Spec s = parse_in_fixtures(
      "kvc: 1\nmodel: {from: hf/Llama-3.1-8B/config.json}\nworkload: {context: 32768, batch: 4}\nbudget: {bytes: 4GiB}\n");
  EXPECT_EQ(s.model, (ir::ModelShape{"Llama-3.1-8B", 32, 32, 8, 128, 500000.0, ir::DType::BF16}));
  EXPECT_EQ(s.model_context, 131072);
  EXPECT_TRUE(fs::equivalent(s.model_from, fixtures_dir() / "hf" / "Llama-3.1-8B" / "config.json"));
}

// Inline shape fields beside model.from must agree with the file; name and
// cache_dtype are the user's choice and override it.
TEST(Spec, ModelFromWithAgreeingInlineFieldsAndOverrides) {
  const Spec s = parse_in_fixtures(
      "kvc: 1\nmodel:\n  from: hf/Qwen2.5-7B/config.json\n  name: my-qwen\n  layers: 28\n  kv_heads: 4\n"
      "  head_dim: 128\n  rope: {theta: 1000000}\n  cache_dtype: fp16\n"
      "workload: {context: 32768}\nbudget: {ratio: 0.25}\n");
  EXPECT_EQ(s.model, (ir::ModelShape{"my-qwen", 28, 28, 4, 128, 1e6, ir::DType::F16}));
  EXPECT_EQ(s.model_context, 32768);
  try {
    parse_in_fixtures(
        "kvc: 1\nmodel:\n  from: hf/Qwen2.5-7B/config.json\n  rope: {theta: 10000}\n"
        "workload: {context: 32768}\nbudget: {ratio: 0.25}\n");
    FAIL() << "a disagreeing rope theta must be rejected";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "model.rope.theta");
    EXPECT_EQ(e.location().line, 4);
    EXPECT_EQ(e.location().column, 17);
    EXPECT_NE(e.message().find("disagrees with 1e+06"), std::string::npos) << e.what();
  }
}

TEST(Spec, RecordsWhereEveryFieldWasWritten) {
  const Spec s = parse_spec(
      "kvc: 1\n"
      "model:\n"
      "  layers: 5\n"
      "  q_heads: 8\n"
      "  kv_heads: 4\n"
      "  head_dim: 8\n"
      "workload: {context: 512, batch: 2}\n"
      "budget:\n"
      "  bytes: 200KiB\n",
      "mem/spec.yaml");
  const SourceLocation bytes = s.location_of("budget.bytes");
  EXPECT_EQ(bytes.file, "mem/spec.yaml");
  EXPECT_EQ(bytes.line, 9);
  EXPECT_EQ(bytes.column, 10);
  EXPECT_EQ(s.location_of("model.kv_heads").line, 5);
  EXPECT_EQ(s.location_of("model.kv_heads").column, 13);
  EXPECT_EQ(s.location_of("workload.batch").line, 7);
  EXPECT_EQ(s.location_of("workload.batch").column, 33);
  EXPECT_EQ(s.location_of("budget").line, 8);  // a section: where its key is
  EXPECT_EQ(s.location_of("budget").column, 1);
  // Fields left out point at the closest enclosing field that was written...
  EXPECT_EQ(s.location_of("workload.generate").line, 7);
  // ... or at the file when nothing encloses them.
  EXPECT_EQ(s.location_of("search.precision.group").file, "mem/spec.yaml");
  EXPECT_EQ(s.location_of("search.precision.group").line, 0);
}

TEST(Spec, PathsResolveAgainstTheSpecFolder) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kvc_spec_paths";
  fs::create_directories(dir / "calib");
  std::ofstream(dir / "calib" / "s.kvstats") << "stats";
  std::ofstream(dir / "spec.yaml") << kStories << "budget: {ratio: 0.5}\ncalibration: {stats: calib/s.kvstats}\n"
                                    << "search:\n  lowrank: {method: xkv, basis: calibrated}\n";
  const Spec s = load_spec((dir / "spec.yaml").string());
  EXPECT_TRUE(fs::equivalent(s.calibration_stats, dir / "calib" / "s.kvstats"));
  EXPECT_EQ(s.search.lowrank.basis, "calibrated");
}

TEST(Spec, NarrowHeadsTakeTheWholeHeadAsTheValueGroup) {
  // head_dim 8 < group 32 is fine; so is a head that is a multiple of the group.
  EXPECT_NO_THROW(parse_in_fixtures(std::string(kStories) + "budget: {ratio: 0.5}\nsearch: {precision: {group: 32}}\n"));
  EXPECT_NO_THROW(parse_in_fixtures(std::string(kStories) + "budget: {ratio: 0.5}\nsearch: {precision: {group: 128}}\n"));
  EXPECT_NO_THROW(parse_in_fixtures(
      "kvc: 1\nmodel: {layers: 2, q_heads: 4, kv_heads: 2, head_dim: 96}\nworkload: {context: 256}\n"
      "budget: {ratio: 0.5}\nsearch: {precision: {group: 32, residual: 64}}\n"));
}

TEST(Spec, ToModuleIsUncompressedWithTheBudget) {
  const Spec s = parse_in_fixtures(std::string(kStories) + "budget: {bytes: 100000}\n");
  const ir::Module m = s.to_module();
  EXPECT_EQ(m.model, s.model);
  EXPECT_EQ(m.workload, s.workload);
  EXPECT_EQ(m.budget_bytes, 100000);
  ASSERT_EQ(m.layers.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(m.layers[static_cast<std::size_t>(i)].index, i);
  EXPECT_EQ(ir::total_bytes(m), ir::fp16_bytes(m));
}

TEST(Spec, MissingOrUnreadableSpecFile) {
  try {
    load_spec("/nonexistent/kvc/spec.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.location().file, "/nonexistent/kvc/spec.yaml");
    EXPECT_NE(e.message().find("spec file not found"), std::string::npos);
  }
  try {
    load_spec(specs_dir().string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("not a regular file"), std::string::npos);
  }
}

TEST(Spec, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = "kvc: 1\nmodel: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  try {
    parse_spec(deep, "deep.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.location().file, "deep.yaml");
    EXPECT_GT(e.location().line, 0);
  }
}

}  // namespace
}  // namespace kvc::frontend

namespace kvc::frontend {
namespace {

// Every truncation and every one-line deletion of every example spec either
// loads or fails with a located kvc::Error; nothing else escapes.
TEST(Spec, MutatedExamplesFailCleanly) {
  int errors = 0;
  for (const auto& name : example_specs()) {
    if (name == "stories260K-file") continue;  // needs the model file; its shape paths are covered above
    std::ifstream in(specs_dir() / (name + ".yaml"));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> variants;
    for (std::size_t cut = 0; cut < text.size(); cut += 5) variants.push_back(text.substr(0, cut));
    for (std::size_t start = 0; start < text.size();) {
      const std::size_t end = std::min(text.find('\n', start), text.size() - 1) + 1;
      variants.push_back(text.substr(0, start) + text.substr(end));
      start = end;
    }
    for (const auto& v : variants) {
      try {
        parse_spec(v, (specs_dir() / (name + ".yaml")).string());
      } catch (const Error& e) {
        ++errors;
        EXPECT_GT(e.location().line, 0) << e.what() << "\n--- for ---\n" << v;
        EXPECT_GT(e.location().column, 0) << e.what();
      }
    }
  }
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace kvc::frontend
