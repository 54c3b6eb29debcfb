#include "calibration/token_sequences.h"

#include <algorithm>
#include <charconv>
#include <fstream>

#include "model/sampler.h"
#include "model/tokenizer.h"
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

std::string SequenceSource::describe() const {
  if (!token_file.empty()) return "tokens:" + token_file;
  if (!text_file.empty()) return "text:" + text_file;
  return "sampled from the model at temperature 1, sequence i with seed + i";
}

SequenceSource SequenceSource::from_description(const std::string& d) {
  SequenceSource s;
  if (d.rfind("tokens:", 0) == 0) s.token_file = d.substr(7);
  if (d.rfind("text:", 0) == 0) s.text_file = d.substr(5);
  return s;
}

std::vector<std::vector<int>> read_source_sequences(const model::Model& model, const SequenceSource& source, int count,
                                                    int length) {
  if (!source.token_file.empty() && !source.text_file.empty())
    throw Error({}, "--text", "give a token file or a text file, not both");
  if (!source.tokenizer_file.empty() && source.text_file.empty())
    throw Error({}, "--tokenizer", "a tokenizer is only used with --text");
  if (!source.token_file.empty()) return read_token_file(source.token_file, count, length, model.config.vocab);
  if (source.text_file.empty()) return {};
  const model::Tokenizer tokenizer = model::Tokenizer::for_model(model.path, model.config.vocab, source.tokenizer_file);
  return read_text_file(source.text_file, tokenizer, count, length);
}

std::vector<int> tokenize_text_file(const std::string& path, const model::Tokenizer& tokenizer) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error({path, 0, 0}, "", "cannot open the text file");
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  auto blank = [](const std::string& l) { return l.find_first_not_of(" \t") == std::string::npos; };
  const bool paragraphs = std::any_of(lines.begin(), lines.end(), blank);
  std::vector<int> stream;
  std::string document;
  int document_line = 0;
  auto flush = [&] {
    if (document.empty()) return;
    try {
      const std::vector<int> ids = tokenizer.encode(document, true);
      stream.insert(stream.end(), ids.begin(), ids.end());
    } catch (const Error& e) {
      throw Error({path, document_line, 0}, "", e.message());
    }
    document.clear();
  };
  for (int i = 0; i < static_cast<int>(lines.size()); ++i) {
    if (blank(lines[i])) {
      flush();
      continue;
    }
    if (document.empty()) document_line = i + 1;
    else document += '\n';
    document += lines[i];
    if (!paragraphs) flush();
  }
  flush();
  return stream;
}

std::vector<std::vector<int>> read_text_file(const std::string& path, const model::Tokenizer& tokenizer, int count,
                                             int length) {
  if (count <= 0 || length <= 0) throw Error({path, 0, 0}, "", "needs a positive sequence count and length");
  const std::vector<int> stream = tokenize_text_file(path, tokenizer);
  const std::int64_t need = static_cast<std::int64_t>(count) * length;
  if (static_cast<std::int64_t>(stream.size()) < need)
    throw Error({path, 0, 0}, "",
                "holds " + std::to_string(stream.size()) + " tokens, enough for " +
                    std::to_string(stream.size() / static_cast<std::size_t>(length)) + " sequences of " +
                    std::to_string(length) + "; " + std::to_string(count) + " were asked for (--sequences, --length)");
  std::vector<std::vector<int>> out;
  for (int i = 0; i < count; ++i)
    out.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(i) * length,
                     stream.begin() + static_cast<std::ptrdiff_t>(i + 1) * length);
  return out;
}

}  // namespace kvc::calibration
