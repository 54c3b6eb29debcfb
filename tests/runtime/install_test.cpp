// The installed package alone is enough for a host: `cmake --install` the runtime
// component into a fresh prefix, build examples/host as a separate CMake project
// with find_package(kvc) against that prefix, and run it on a plan folder.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "ir/printer.h"
#include "runtime/plan_builders.h"
#include "test_support/test_data.h"

namespace kvc {
namespace {

int run(const std::string& command, const std::filesystem::path& log) {
  return std::system((command + " > \"" + log.string() + "\" 2>&1").c_str());
}

std::string read(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(RuntimeInstall, ExampleHostBuildsAgainstTheInstalledPackageAndRuns) {
  namespace fs = std::filesystem;
  const fs::path work = fs::path(testing::binary_dir()) / "runtime_install_test";
  fs::remove_all(work);
  fs::create_directories(work / "plan");
  const fs::path prefix = work / "prefix", build = work / "host-build", log = work / "log.txt";
  const std::string cmake = KVC_CMAKE_COMMAND;

  ir::LayerPlan l0 = testing::kivi_layer(4, 2, 32, 32);
  l0.retention = {ir::RetentionPolicy::H2O, 96, 4, 16, 0, 0.0};
  ir::LayerPlan l1 = testing::kivi_layer(2, 2, 32, 0);
  l1.lowrank = {16, ir::BasisSharing::PerLayer, -1, ir::BasisSource::Prefill};
  {
    std::ofstream f(work / "plan" / "plan.kvc");
    f << ir::print_module(testing::runtime_module(64, 2, 4, 256, 2, {l0, l1}));
  }

  ASSERT_EQ(0, run("\"" + cmake + "\" --install \"" + testing::binary_dir() + "\" --component kvc_runtime --prefix \"" +
                       prefix.string() + "\"",
                   log))
      << read(log);
  ASSERT_TRUE(fs::exists(prefix / "include" / "kvc.h"));
  // Configure with nothing of the source or build tree in sight but the example.
  ASSERT_EQ(0, run("\"" + cmake + "\" -S \"" + testing::source_dir() + "/examples/host\" -B \"" + build.string() +
                       "\" -DCMAKE_PREFIX_PATH=\"" + prefix.string() + "\" -DCMAKE_BUILD_TYPE=Release",
                   log))
      << read(log);
  ASSERT_EQ(0, run("\"" + cmake + "\" --build \"" + build.string() + "\"", log)) << read(log);
  const std::string flags = read(build / "CMakeFiles" / "kvc_host.dir" / "flags.make");
  EXPECT_EQ(flags.find(testing::source_dir() + "/runtime"), std::string::npos) << flags;
  ASSERT_EQ(0, run("\"" + (build / "kvc_host").string() + "\" \"" + (work / "plan").string() + "\"", log))
      << read(log);
  const std::string out = read(log);
  EXPECT_NE(out.find("kvc_host: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("refused as expected"), std::string::npos) << out;
}

}  // namespace
}  // namespace kvc
