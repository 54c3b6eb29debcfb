// `kvc compile --emit obj`: the AOT files for the spec's target.cpu, combined with
// the other outputs, and errors that name the field or path with nothing left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "run_command.h"
#include "test_support/test_data.h"

namespace kvc::testing {
namespace {

namespace fs = std::filesystem;

std::string kvc() { return KVC_CLI_PATH; }

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("kvc-emit-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The 70B spec with its target.cpu line replaced.
fs::path spec_with_cpu(const fs::path& dir, const std::string& cpu) {
  std::string text = read(source_dir() + "/specs/llama-3.1-70b.yaml");
  const std::string from = "cpu: x86-64-v3";
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos);
  text.replace(at, from.size(), "cpu: " + cpu);
  fs::create_directories(dir);
  const fs::path p = dir / "spec.yaml";
  std::ofstream(p) << text;
  return p;
}

TEST(EmitObj, Llama70bForX86_64_v3GetsAvx2KernelsAndATableOfEveryLayer) {
  const fs::path dir = fresh_dir("70b");
  auto r = run_command(kvc() + " compile " + shell_quote(source_dir() + "/specs/llama-3.1-70b.yaml") +
                       " --emit obj -o " + shell_quote(dir.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir / "kernels.o"));
  ASSERT_GT(fs::file_size(dir / "kernels.o"), 0u);
  EXPECT_TRUE(fs::exists(dir / "plan.kvc"));
  const std::string header = read(dir / "kvc_kernels.h");
  EXPECT_NE(header.find("#define KVC_NUM_LAYERS 80"), std::string::npos);
  EXPECT_NE(header.find("_avx2(const kvc_attend_args* args);"), std::string::npos) << header;
  EXPECT_EQ(header.find("_avx512"), std::string::npos) << "x86-64-v3 has no AVX-512";
  EXPECT_NE(header.find("/* layer 79 */"), std::string::npos);
  EXPECT_NE(r.out.find("kernels.o"), std::string::npos) << r.out;
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_NE(e.path().filename().string().front(), '.') << "temporary left behind: " << e.path();
  fs::remove_all(dir);
}

TEST(EmitObj, NamedCpuPicksTheIsaFromItsFeatures) {
  const fs::path dir = fresh_dir("cpus");
  struct Case {
    const char* cpu;
    const char* isa;
  };
  for (const Case& c : {Case{"x86-64-v4", "_avx512("}, Case{"znver4", "_avx512("}, Case{"x86-64", "_scalar("}}) {
    SCOPED_TRACE(c.cpu);
    const fs::path out = dir / c.cpu;
    auto r = run_command(kvc() + " compile " + shell_quote(spec_with_cpu(dir, c.cpu).string()) +
                         " --emit obj -o " + shell_quote(out.string()));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(read(out / "kvc_kernels.h").find(c.isa), std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(EmitObj, CombinesWithPlanAndReportAndRepeats) {
  const fs::path dir = fresh_dir("combined");
  auto r = run_command(kvc() + " compile " + shell_quote(source_dir() + "/specs/llama-3.1-70b.yaml") +
                       " --emit plan --emit obj,report -o " + shell_quote(dir.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("total bytes:"), std::string::npos) << "report";
  EXPECT_NE(r.out.find("layer"), std::string::npos) << "plan";
  EXPECT_TRUE(fs::exists(dir / "kernels.o"));
  EXPECT_TRUE(fs::exists(dir / "kvc_kernels.h"));
  fs::remove_all(dir);
}

TEST(EmitObj, UnknownCpuPointsAtTargetCpuAndWritesNothing) {
  const fs::path dir = fresh_dir("badcpu");
  const fs::path spec = spec_with_cpu(dir / "spec", "pentium-nonexistent");
  const fs::path out = dir / "out";
  auto r = run_command(kvc() + " compile " + shell_quote(spec.string()) + " --emit obj -o " + shell_quote(out.string()));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(spec.string() + ":29:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("target.cpu"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pentium-nonexistent"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out / "kernels.o"));
  EXPECT_FALSE(fs::exists(out / "kvc_kernels.h"));
  EXPECT_FALSE(fs::exists(out / "plan.kvc"));
  fs::remove_all(dir);
}

TEST(EmitObj, UnwritableFolderIsAnErrorNamingIt) {
  const fs::path dir = fresh_dir("unwritable");
  fs::create_directories(dir);
  std::ofstream(dir / "a-file") << "x";
  const fs::path out = dir / "a-file" / "out";
  auto r = run_command(kvc() + " compile " + shell_quote(source_dir() + "/specs/llama-3.1-70b.yaml") +
                       " --emit obj -o " + shell_quote(out.string()));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(out.string()), std::string::npos) << r.err;

  r = run_command(kvc() + " compile " + shell_quote(source_dir() + "/specs/llama-3.1-70b.yaml") + " --emit obj");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("-o DIR"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

TEST(EmitObj, TimePassesReportsTheJitCompileOfEveryKernel) {
  auto r = run_command(kvc() + " compile --time-passes " + shell_quote(source_dir() + "/specs/llama-3.1-70b.yaml"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("Pass execution timing report"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Kernel JIT compile report"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("for 80 layers"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Total kernel compile time:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kvc_attend_"), std::string::npos) << "a row per kernel: " << r.err;

  // The reference backend has no kernels to compile.
  r = run_command(kvc() + " compile --time-passes " + shell_quote(source_dir() + "/specs/stories260K.yaml"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("Kernel JIT compile report"), std::string::npos) << r.err;
}

TEST(EmitObj, HelpDescribesObj) {
  auto r = run_command(kvc() + " compile --help");
  EXPECT_EQ(r.status, 0);
  for (const char* word : {"obj", "kernels.o", "kvc_kernels.h", "target.cpu"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word;
}

}  // namespace
}  // namespace kvc::testing
