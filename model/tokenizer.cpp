#include "model/tokenizer.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <queue>

#include "frontend/binary_file.h"
#include "frontend/gguf.h"
#include "support/diagnostics.h"

namespace kvc::model {
namespace {

// Bytes of the UTF-8 character starting with `lead` (1 for a byte that starts
// none: it is then its own unit, and falls back to its byte token).
int utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// The character of `text` at `i`: its full length when the continuation bytes are
// there, else one byte.
std::size_t unit_length(std::string_view text, std::size_t i) {
  const int n = utf8_length(static_cast<unsigned char>(text[i]));
  if (n == 1 || i + n > text.size()) return 1;
  for (int k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 1;
  return static_cast<std::size_t>(n);
}

std::string byte_piece_name(int byte) {
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", byte);
  return name;
}

}  // namespace

void Tokenizer::index() {
  lookup_.clear();
  lookup_.reserve(pieces_.size());
  for (int id = 0; id < vocab_size(); ++id) lookup_.emplace(pieces_[id], id);  // keeps the first on duplicates
  byte_token_.fill(-1);
  byte_of_.assign(pieces_.size(), -1);
  for (int b = 0; b < 256; ++b)
    if (auto it = lookup_.find(byte_piece_name(b)); it != lookup_.end()) {
      byte_token_[b] = it->second;
      byte_of_[it->second] = static_cast<std::int16_t>(b);
    }
}

Tokenizer Tokenizer::load_llama2c(const std::string& path, int vocab) {
  if (vocab <= 0) throw Error(SourceLocation{path, 0, 0}, "", "tokenizer for a model with no vocabulary");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open the tokenizer file");
  const std::int64_t size = frontend::file_size_of(path);
  std::int64_t offset = 0;
  auto read = [&](void* out, std::int64_t n, const char* what) {
    if (offset + n > size)
      frontend::fail_at_offset(path, offset,
                               std::string("file ends inside ") + what + " (" + std::to_string(size) +
                                   " bytes; the tokenizer of a " + std::to_string(vocab) +
                                   "-token model needs more)");
    in.read(static_cast<char*>(out), n);
    if (!in) frontend::fail_at_offset(path, offset, std::string("cannot read ") + what);
    offset += n;
  };
  std::int32_t max_length = 0;
  read(&max_length, 4, "the header (int32 max_token_length)");
  if (max_length <= 0 || max_length > 1 << 16)
    frontend::fail_at_offset(path, 0, "max_token_length is " + std::to_string(max_length) + ", expected 1..65536");
  Tokenizer t;
  t.source_ = path;
  t.pieces_.resize(static_cast<std::size_t>(vocab));
  t.scores_.resize(static_cast<std::size_t>(vocab));
  for (int id = 0; id < vocab; ++id) {
    const std::int64_t token_at = offset;
    read(&t.scores_[id], 4, ("the score of token " + std::to_string(id)).c_str());
    if (!std::isfinite(t.scores_[id]))
      frontend::fail_at_offset(path, token_at, "token " + std::to_string(id) + ": score is not finite");
    std::int32_t length = 0;
    const std::int64_t length_at = offset;
    read(&length, 4, ("the length of token " + std::to_string(id)).c_str());
    if (length < 0 || length > max_length)
      frontend::fail_at_offset(path, length_at,
                               "token " + std::to_string(id) + ": length " + std::to_string(length) +
                                   " outside 0..max_token_length (" + std::to_string(max_length) + ")");
    t.pieces_[id].resize(static_cast<std::size_t>(length));
    read(t.pieces_[id].data(), length, ("the bytes of token " + std::to_string(id)).c_str());
  }
  if (offset != size)
    frontend::fail_at_offset(path, offset,
                             "trailing data after " + std::to_string(vocab) + " tokens (the file has " +
                                 std::to_string(size) + " bytes): is it the tokenizer of another model?");
  t.index();
  return t;
}

bool Tokenizer::gguf_has_vocabulary(const frontend::GgufFile& g) { return g.find("tokenizer.ggml.tokens") != nullptr; }

Tokenizer Tokenizer::from_gguf(const frontend::GgufFile& g) {
  const std::string& path = g.path();
  auto fail = [&](const std::string& key, const std::string& message) {
    throw Error(SourceLocation{path, 0, 0}, "key '" + key + "'", message);
  };
  const std::string model = g.find("tokenizer.ggml.model") ? g.get_string("tokenizer.ggml.model") : "llama";
  if (model != "llama")
    fail("tokenizer.ggml.model", "tokenizer model '" + model + "' is not supported (only 'llama', SentencePiece BPE)");
  const frontend::GgufValue* tokens = g.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != frontend::GgufValueType::Array ||
      tokens->array_type != frontend::GgufValueType::String || tokens->array.empty())
    fail("tokenizer.ggml.tokens", "missing or not a non-empty array of strings");
  const frontend::GgufValue* scores = g.find("tokenizer.ggml.scores");
  if (scores && (scores->type != frontend::GgufValueType::Array || scores->array.size() != tokens->array.size()))
    fail("tokenizer.ggml.scores", "expected one number per token (" + std::to_string(tokens->array.size()) + ")");
  Tokenizer t;
  t.source_ = path;
  static const std::string kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  for (std::size_t i = 0; i < tokens->array.size(); ++i) {
    std::string p = tokens->array[i].s;
    for (std::size_t at = 0; (at = p.find(kSpaceMark, at)) != std::string::npos;) p.replace(at, kSpaceMark.size(), " ");
    t.pieces_.push_back(std::move(p));
    const frontend::GgufValue* s = scores ? &scores->array[i] : nullptr;
    const double score = !s ? 0.0 : s->is_float() ? s->f : s->is_integer() ? static_cast<double>(s->i) : 0.0;
    t.scores_.push_back(static_cast<float>(score));
  }
  const int n = t.vocab_size();
  t.bos_ = static_cast<int>(g.get_int("tokenizer.ggml.bos_token_id", 1));
  t.eos_ = static_cast<int>(g.get_int("tokenizer.ggml.eos_token_id", 2));
  if (t.bos_ < 0 || t.bos_ >= n) fail("tokenizer.ggml.bos_token_id", "outside the vocabulary of " + std::to_string(n));
  if (t.eos_ < 0 || t.eos_ >= n) fail("tokenizer.ggml.eos_token_id", "outside the vocabulary of " + std::to_string(n));
  t.index();
  return t;
}

Tokenizer Tokenizer::for_model(const std::string& model_path, int vocab, const std::string& explicit_path) {
  std::ifstream in(model_path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  const bool gguf = in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  Tokenizer t;
  if (!explicit_path.empty()) {
    t = load_llama2c(explicit_path, vocab);
  } else if (gguf) {
    // A GGUF model is parsed once: its own vocabulary when it has one.
    const frontend::GgufFile file = frontend::GgufFile::open(model_path);
    if (gguf_has_vocabulary(file)) t = from_gguf(file);
  }
  if (t.pieces_.empty() && explicit_path.empty()) {
    const std::filesystem::path dir = std::filesystem::path(model_path).parent_path();
    std::vector<std::filesystem::path> tried;
    for (const std::string& name : {"tok" + std::to_string(vocab) + ".bin", std::string("tokenizer.bin")}) {
      tried.push_back(dir / name);
      if (std::filesystem::exists(tried.back())) {
        t = load_llama2c(tried.back().string(), vocab);
        break;
      }
    }
    if (t.pieces_.empty())
      throw Error(SourceLocation{model_path, 0, 0}, "",
                  "no tokenizer found for this model (looked for " + tried[0].string() + " and " + tried[1].string() +
                      "); give one with --tokenizer");
  }
  if (t.vocab_size() != vocab)
    throw Error(SourceLocation{t.source_, 0, 0}, "",
                "the tokenizer has " + std::to_string(t.vocab_size()) + " tokens, the model " + std::to_string(vocab));
  return t;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool bos) const {
  // One symbol per character (or byte); each symbol is a token id, linked to its
  // neighbours so that merges are O(1), with a heap of candidate merges ordered
  // by score and then position, which gives llama2.c's "highest score, leftmost
  // first" order in O(n log n) instead of its O(n^2) rescans.
  struct Symbol {
    int id, prev, next;
    std::size_t start, length;  // bytes of the working text
  };
  std::string work;
  if (!text.empty()) work = " ";
  work.append(text);
  std::vector<Symbol> sym;
  auto push = [&](int id, std::size_t start, std::size_t length) {
    const int i = static_cast<int>(sym.size());
    sym.push_back({id, i - 1, i + 1, start, length});
  };
  for (std::size_t i = 0; i < work.size();) {
    const std::size_t n = unit_length(work, i);
    if (auto it = lookup_.find(work.substr(i, n)); it != lookup_.end()) {
      push(it->second, i, n);
    } else {
      for (std::size_t k = 0; k < n; ++k) {
        const auto byte = static_cast<unsigned char>(work[i + k]);
        if (byte_token_[byte] < 0)
          throw Error("tokenizer " + source_ + ": byte " + byte_piece_name(byte) +
                      " has no piece and the vocabulary has no byte token for it");
        push(byte_token_[byte], i + k, 1);
      }
    }
    i += n;
  }
  if (!sym.empty()) sym.back().next = -1;

  struct Candidate {
    float score;
    int left;
    std::size_t length;  // of the merged text: stale when the pair changed since
    int id;
    bool operator<(const Candidate& o) const {  // max-heap: higher score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Candidate> heap;
  auto consider = [&](int left) {
    if (left < 0 || sym[left].next < 0) return;
    const Symbol& a = sym[left];
    const Symbol& b = sym[a.next];
    if (auto it = lookup_.find(work.substr(a.start, a.length + b.length)); it != lookup_.end())
      heap.push({scores_[it->second], left, a.length + b.length, it->second});
  };
  for (int i = 0; i < static_cast<int>(sym.size()); ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& a = sym[c.left];
    if (a.length == 0 || a.next < 0 || a.length + sym[a.next].length != c.length) continue;  // stale
    Symbol& b = sym[a.next];
    a.id = c.id;
    a.length = c.length;
    b.length = 0;  // merged away
    a.next = b.next;
    if (a.next >= 0) sym[a.next].prev = c.left;
    consider(a.prev);
    consider(c.left);
  }
  std::vector<int> ids;
  if (bos) ids.push_back(bos_);
  for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
  return ids;
}

std::string Tokenizer::piece(int id) const {
  if (id < 0 || id >= vocab_size())
    throw Error("tokenizer " + source_ + ": token id " + std::to_string(id) + " outside the vocabulary [0, " +
                std::to_string(vocab_size()) + ")");
  if (byte_of_[id] >= 0) return std::string(1, static_cast<char>(byte_of_[id]));
  return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids)
    if (id != bos_ && id != eos_) out += piece(id);
  if (!out.empty() && out[0] == ' ') out.erase(0, 1);  // the dummy prefix encode() added
  return out;
}

}  // namespace kvc::model
