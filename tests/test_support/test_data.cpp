#include "test_support/test_data.h"

#include <cstdlib>
#include <filesystem>
#include <string_view>

namespace kvc::testing {

std::string source_dir() { return KVC_SOURCE_DIR; }
std::string binary_dir() { return KVC_BINARY_DIR; }

std::string models_dir() {
  if (const char* env = std::getenv("KVC_SHARED_MODELS_DIR"); env && *env) return env;
  return KVC_DEFAULT_MODELS_DIR;
}

bool running_under_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string_view(ci) == "true";
}

bool model_file_available(const std::string& name, std::string* path, std::string* why) {
  *path = (std::filesystem::path(models_dir()) / name).string();
  if (std::filesystem::exists(*path)) return true;
  *why = "test data " + *path + " not found (set KVC_SHARED_MODELS_DIR to the folder holding " + name + ")";
  return false;
}

}  // namespace kvc::testing
