#include "calibration/token_sequences.h"

#include <charconv>
#include <fstream>

#include "model/sampler.h"
#include "support/diagnostics.h"

namespace kvc::calibration {

std::vector<std::vector<int>> sample_sequences(const model::Model& model, int count, int length, std::uint64_t seed) {
  std::vector<std::vector<int>> out;
  out.reserve(count);
  for (int i = 0; i < count; ++i) out.push_back(model::generate_sequence(model, seed + i, length, 1.0f));
  return out;
}

std::vector<std::vector<int>> read_token_file(const std::string& path, int count, int length, int vocab) {
  std::ifstream f(path);
  if (!f) throw Error({path, 0, 0}, "", "cannot open the token file");
  std::vector<std::vector<int>> out;
  std::string line;
  int line_no = 0;
  while (static_cast<int>(out.size()) < count && std::getline(f, line)) {
    ++line_no;
    std::size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::vector<int> ids;
    std::size_t i = 0;
    while (i < line.size() && static_cast<int>(ids.size()) < length) {
      if (line[i] == ' ' || line[i] == '\t' || line[i] == ',' || line[i] == '\r') {
        ++i;
        continue;
      }
      int id = 0;
      const auto [end, ec] = std::from_chars(line.data() + i, line.data() + line.size(), id);
      const int column = static_cast<int>(i) + 1;
      if (ec != std::errc() || (end != line.data() + line.size() && *end != ' ' && *end != '\t' && *end != ',' &&
                                *end != '\r'))
        throw Error({path, line_no, column}, "", "expected a token id (an integer)");
      if (id < 0 || id >= vocab)
        throw Error({path, line_no, column}, "",
                    "token id " + std::to_string(id) + " outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
      ids.push_back(id);
      i = static_cast<std::size_t>(end - line.data());
    }
    if (static_cast<int>(ids.size()) < length)
      throw Error({path, line_no, 1}, "",
                  "sequence has " + std::to_string(ids.size()) + " tokens, need " + std::to_string(length) + " (--length)");
    out.push_back(std::move(ids));
  }
  if (static_cast<int>(out.size()) < count)
    throw Error({path, 0, 0}, "",
                "has " + std::to_string(out.size()) + " sequences, need " + std::to_string(count) + " (--sequences)");
  return out;
}

}  // namespace kvc::calibration
