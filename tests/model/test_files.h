#pragma once
// Scratch files for the model tests, in a per-process folder under the system
// temp dir (the shared model files are only ever read).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace kvc::testing {

inline std::string scratch_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("kvc_model_tests_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Removes the old file first: truncating a file that has data makes ext4
// (auto_da_alloc) flush it on close, which made the corruption sweeps crawl.
inline void write_file_bytes(const std::string& path, const std::uint8_t* data, std::size_t n) {
  std::filesystem::remove(path);
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
}
inline void write_file_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  write_file_bytes(path, bytes.data(), bytes.size());
}

}  // namespace kvc::testing
