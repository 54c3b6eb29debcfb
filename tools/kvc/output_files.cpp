#include "output_files.h"

#include <filesystem>
#include <fstream>

#include "support/diagnostics.h"

namespace kvc::cli {

void write_output_files(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& files) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error({dir, 0, 0}, "-o", "cannot create output folder: " + ec.message());
  std::vector<std::pair<fs::path, fs::path>> staged;
  auto discard = [&] {
    for (auto& [tmp, _] : staged) fs::remove(tmp, ec);
  };
  for (const auto& [name, contents] : files) {
    const fs::path final_path = fs::path(dir) / name;
    const fs::path tmp = fs::path(dir) / ("." + name + ".tmp");
    std::ofstream out(tmp, std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    staged.emplace_back(tmp, final_path);
    if (!out) {
      discard();
      throw Error({final_path.string(), 0, 0}, "-o", "cannot write file");
    }
  }
  for (auto& [tmp, final_path] : staged) {
    fs::rename(tmp, final_path, ec);
    if (ec) {
      discard();
      throw Error({final_path.string(), 0, 0}, "-o", "cannot move file into place: " + ec.message());
    }
  }
}

}  // namespace kvc::cli
