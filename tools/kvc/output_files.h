#pragma once
// Output that is all-or-nothing: files are written to a temporary name in the
// destination folder and renamed into place only when every one of them has been
// written, so a failed command never leaves a partial output behind.
#include <string>
#include <utility>
#include <vector>

namespace kvc::cli {

// Writes each (file name, contents) into `dir` (created if needed). Throws kvc::Error.
void write_output_files(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace kvc::cli
