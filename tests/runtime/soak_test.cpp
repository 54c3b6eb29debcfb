// A seconds-long runtime soak (runtime/soak.h) per backend, two threads; the
// long runs are scripts/soak.sh. In sanitizer builds LeakSanitizer watches this
// test (tests/runtime/CMakeLists.txt).
#include <gtest/gtest.h>

#include "runtime/soak.h"

namespace kvc::soak {
namespace {

void soak_briefly(kvc_backend backend) {
  SoakOptions options;
  options.threads = 2;
  options.seconds = 1.0;
  options.backend = backend;
  const SoakReport r = run_soak(options);
  std::printf("%s: %s\n", kvc_backend_name(backend), describe(r).c_str());
  EXPECT_TRUE(r.failure.empty()) << r.failure;
  // A soak that did almost nothing would pass without testing anything.
  EXPECT_GT(r.operations, 50);
  EXPECT_GT(r.creates, 2);
  EXPECT_GT(r.attends, 50);
}

TEST(RuntimeSoak, ReferenceBackendTwoThreads) { soak_briefly(KVC_BACKEND_REFERENCE); }

TEST(RuntimeSoak, ReferenceBackendDrivesTheRotatedLayers) {
  SoakOptions options;
  options.max_operations = 200;
  options.seconds = 60.0;
  const SoakReport r = run_soak(options);
  EXPECT_TRUE(r.failure.empty()) << r.failure;
  EXPECT_TRUE(r.rotated);
  EXPECT_EQ(r.layers, 6);
}

TEST(RuntimeSoak, JitBackendTwoThreads) { soak_briefly(KVC_BACKEND_LLVM_JIT); }

}  // namespace
}  // namespace kvc::soak
