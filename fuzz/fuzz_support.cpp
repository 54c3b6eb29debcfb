#include "fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <typeinfo>
#include <unistd.h>

#include "support/diagnostics.h"

namespace kvc::fuzz {
namespace {

namespace fs = std::filesystem;

// The folder, removed when the process ends normally.
struct Scratch {
  std::string dir;
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

}  // namespace

std::string scratch_dir() {
  static const Scratch scratch = [] {
    // /dev/shm keeps the one write per input off the disk where it exists.
    std::error_code ec;
    const fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path d = base / ("kvc_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return Scratch{d.string()};
  }();
  return scratch.dir;
}

std::string write_input(const std::uint8_t* data, std::size_t size, const std::string& name) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  f.close();
  if (!f) finding("cannot write the fuzz input to " + path);
  return path;
}

void finding(const std::string& what) {
  std::fprintf(stderr, "kvc fuzz finding: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void check_error_names(const std::string& message, const std::string& origin) {
  if (message.find(origin) == std::string::npos)
    finding("the error does not name '" + origin + "': " + message);
}

void classify(const std::exception& e, const std::string& origin) {
  if (!dynamic_cast<const Error*>(&e))
    finding(std::string("a reader threw ") + typeid(e).name() + " instead of kvc::Error: " + e.what());
  check_error_names(e.what(), origin);
}

}  // namespace kvc::fuzz
