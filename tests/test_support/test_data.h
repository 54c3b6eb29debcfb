#pragma once
// Where tests find things: the source tree, the build tree, and the test data
// beside the project (../shared/models, or $KVC_SHARED_MODELS_DIR).
#include <string>

namespace kvc::testing {

std::string source_dir();
std::string binary_dir();
std::string models_dir();

// Path of a file in the models dir. When it is missing the calling test is
// skipped with a message naming the path, except under CI (CI=true), where a
// missing file is a failure: call as
//   std::string path; KVC_REQUIRE_MODEL_FILE(path, "stories260K.bin");
bool model_file_available(const std::string& name, std::string* path, std::string* why);
bool running_under_ci();

}  // namespace kvc::testing

#define KVC_REQUIRE_MODEL_FILE(out_path, name)                                                    \
  do {                                                                                            \
    std::string kvc_why_;                                                                         \
    if (!::kvc::testing::model_file_available((name), &(out_path), &kvc_why_)) {                  \
      if (::kvc::testing::running_under_ci()) FAIL() << kvc_why_ << " (required under CI=true)"; \
      GTEST_SKIP() << kvc_why_;                                                                   \
    }                                                                                             \
  } while (0)
