// The driver of a fuzz target in builds without libFuzzer: runs the target once
// on every file under the folders (or files) named on the command line, so the
// committed seed corpus and the regression inputs are a test of the normal build.
// A finding aborts, as under libFuzzer.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void replay(const std::filesystem::path& file) {
  std::ifstream f(file, std::ios::binary);
  const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(f), {}};
  std::fprintf(stderr, "replay %s (%zu bytes)\n", file.string().c_str(), bytes.size());
  // A non-null pointer even for an empty input, as libFuzzer passes.
  static const std::uint8_t empty = 0;
  LLVMFuzzerTestOneInput(bytes.empty() ? &empty : bytes.data(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  int inputs = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    if (fs::is_regular_file(arg)) {
      replay(arg);
      ++inputs;
      continue;
    }
    if (!fs::is_directory(arg)) continue;  // a target with no regressions yet has no folder
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(arg))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) replay(f);
    inputs += static_cast<int>(files.size());
  }
  std::printf("replayed %d inputs\n", inputs);
  // A target whose corpus is gone would pass while testing nothing.
  return inputs > 0 ? 0 : 1;
}
