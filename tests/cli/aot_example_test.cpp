// The AOT example from a clean build: `kvc compile SPEC --emit obj -o DIR`, install
// the runtime (libkvc, find_package(kvc)) into a fresh prefix, configure and build
// examples/aot as a separate CMake project against DIR and that prefix, and run it:
// it checks the AOT kernels against the runtime's reference kernel in a decode loop,
// and (with the AOT append encoders installed) the blocks against a reference runtime's.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "run_command.h"
#include "test_support/test_data.h"

namespace kvc::testing {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) { return shell_quote(p.string()); }

// Runs a command, failing the test with what it printed when it fails.
::testing::AssertionResult ran(const std::string& command) {
  const CommandResult r = run_command(command);
  if (r.status == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << command << "\nexit " << r.status << "\n" << r.out << r.err;
}

class AotExample : public ::testing::Test {
 protected:
  // A directory and runtime install of the test's own: ctest runs each test in its
  // own process, in parallel, and a directory shared by the suite could be removed
  // by one test's setup while another is building in it.
  void SetUp() override {
    work_ = fs::path(binary_dir()) / "aot_example_test" / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(work_);
    fs::create_directories(work_);
    install_ok_ = ran("\"" KVC_CMAKE_COMMAND "\" --install " + shell_quote(binary_dir()) +
                      " --component kvc_runtime --prefix " + q(work_ / "prefix"));
  }

  // Compiles `spec` into kernels, builds the example against them and runs it; returns its output.
  std::string build_and_run(const fs::path& spec, const std::string& name) {
    const fs::path kernels = work_ / name / "kernels", build = work_ / name / "build";
    EXPECT_TRUE(ran(std::string(KVC_CLI_PATH) + " compile " + q(spec) + " --emit obj -o " + q(kernels)));
    EXPECT_TRUE(ran("\"" KVC_CMAKE_COMMAND "\" -S " + shell_quote(source_dir() + "/examples/aot") + " -B " + q(build) +
                    " -DCMAKE_BUILD_TYPE=Release -DKVC_KERNELS_DIR=" + q(kernels) +
                    " -DCMAKE_PREFIX_PATH=" + q(work_ / "prefix")));
    EXPECT_TRUE(ran("\"" KVC_CMAKE_COMMAND "\" --build " + q(build)));
    const CommandResult r = run_command(q(build / "kvc_aot") + " " + q(kernels));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    return r.out;
  }

  fs::path work_;
  ::testing::AssertionResult install_ok_ = ::testing::AssertionSuccess();
};

TEST_F(AotExample, Stories260kPlanAgreesWithTheReferenceKernel) {
  ASSERT_TRUE(install_ok_);
  const std::string out = build_and_run(source_dir() + "/specs/stories260K.yaml", "stories");
  EXPECT_NE(out.find("plan: 5 layers, 8 query heads, 4 KV heads, head_dim 8"), std::string::npos) << out;
  EXPECT_NE(out.find("AOT vs reference kernel"), std::string::npos) << out;
  EXPECT_NE(out.find("kvc_aot: ok (120 checks)"), std::string::npos) << out;  // 24 steps x 5 layers
  EXPECT_NE(out.find("append: AOT encoders on 5 layers; reference kernel over their blocks bit-identical"),
            std::string::npos)
      << out;
}

TEST_F(AotExample, TwoSequencePlanComparesOnForks) {
  ASSERT_TRUE(install_ok_);
  const fs::path spec = work_ / "two.yaml";
  std::ofstream(spec) << "kvc: 1\n"
                         "model: {name: two, layers: 3, q_heads: 8, kv_heads: 2, head_dim: 64}\n"
                         "workload: {context: 1024, batch: 2, generate: 64}\n"
                         "budget: {ratio: 0.3}\n"
                         "search:\n"
                         "  precision: {method: uniform, candidates: [K8V8, K4V4, K4V2, K2V2], group: 32, "
                         "residual: 64}\n"
                         "  retention: {method: h2o}\n"
                         "target: {backend: llvm-aot, cpu: native}\n";
  const std::string out = build_and_run(spec, "two");
  EXPECT_NE(out.find("two forked sequences"), std::string::npos) << out;
  EXPECT_NE(out.find("kvc_aot: ok (72 checks)"), std::string::npos) << out;
  EXPECT_NE(out.find("append: AOT encoders on 3 layers"), std::string::npos) << out;
}

}  // namespace
}  // namespace kvc::testing
