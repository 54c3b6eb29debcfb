// The llama2.c tokenizer: the reference model's text, encode/decode round trips on
// random UTF-8 (against a direct transcription of run.c's O(n^2) merge loop as the
// oracle), GGUF vocabularies, and corrupt tokenizer files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include "frontend/gguf.h"
#include "model/gguf_writer.h"
#include "model/reference_vectors.h"
#include "model/error_of.h"
#include "model/test_files.h"
#include "model/tokenizer.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::model {
namespace {

using testing::contains;
using testing::error_of;

// A llama2.c tokenizer file, parsed plainly: the oracle's vocabulary.
struct RawVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
};
RawVocab read_raw_vocab(const std::string& path, int vocab) {
  std::ifstream in(path, std::ios::binary);
  RawVocab v;
  std::int32_t max_len = 0;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  for (int i = 0; i < vocab; ++i) {
    float score = 0;
    std::int32_t len = 0;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    std::string p(static_cast<std::size_t>(len), '\0');
    in.read(p.data(), len);
    v.pieces.push_back(p);
    v.scores.push_back(score);
  }
  return v;
}

// run.c's encode, transcribed: per-character lookup with byte fallback, then merge
// the best-scoring pair (first on ties) until none is left.
std::vector<int> oracle_encode(const RawVocab& v, const std::string& text) {
  std::map<std::string, int> lookup;
  for (int i = static_cast<int>(v.pieces.size()) - 1; i >= 0; --i) lookup[v.pieces[i]] = i;
  std::vector<int> ids;
  const std::string work = text.empty() ? "" : " " + text;
  for (std::size_t i = 0; i < work.size();) {
    std::size_t n = 1;
    const auto lead = static_cast<unsigned char>(work[i]);
    const std::size_t want = lead >= 0xF0 && lead < 0xF8 ? 4 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xC0 && lead < 0xE0 ? 2 : 1;
    if (want > 1 && i + want <= work.size()) {
      bool ok = true;
      for (std::size_t k = 1; k < want; ++k) ok = ok && (static_cast<unsigned char>(work[i + k]) & 0xC0) == 0x80;
      if (ok) n = want;
    }
    auto it = lookup.find(work.substr(i, n));
    if (it != lookup.end()) {
      ids.push_back(it->second);
    } else {
      for (std::size_t k = 0; k < n; ++k) ids.push_back(static_cast<unsigned char>(work[i + k]) + 3);
    }
    i += n;
  }
  while (true) {
    float best = -1e10f;
    int best_id = -1, best_at = -1;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
      auto it = lookup.find(v.pieces[ids[i]] + v.pieces[ids[i + 1]]);
      if (it != lookup.end() && v.scores[it->second] > best) {
        best = v.scores[it->second];
        best_id = it->second;
        best_at = static_cast<int>(i);
      }
    }
    if (best_at < 0) break;
    ids[best_at] = best_id;
    ids.erase(ids.begin() + best_at + 1);
  }
  return ids;
}

// Random text: ASCII words and punctuation, newlines and tabs, accented letters,
// CJK, emoji, an em dash, control bytes, and characters with no piece at all.
std::string random_text(std::mt19937_64& rng) {
  static const std::vector<std::string> parts = {
      "the", "little", " ", " ", "  ", "Lily", "dog", ".", ",", "!", "\"", "'", "\n", "\t", "é", "Zoë", "ü", "ß",
      "中", "文", "😀", "—", "\x01", "\x7f", "ab", "xyzzy", "Once upon a time", "3", "42", "ñ", "Ω", "🦊", "\r\n"};
  std::uniform_int_distribution<std::size_t> pick(0, parts.size() - 1), count(0, 40);
  std::string s;
  for (std::size_t n = count(rng), i = 0; i < n; ++i) s += parts[pick(rng)];
  return s;
}

class Tok4096 : public ::testing::Test {
 protected:
  void SetUp() override {
    KVC_REQUIRE_MODEL_FILE(model_, "stories3M-q80.bin");
    KVC_REQUIRE_MODEL_FILE(path_, "tok4096.bin");
    tok_ = Tokenizer::for_model(model_, 4096);
  }
  std::string model_, path_;
  Tokenizer tok_;
};

TEST_F(Tok4096, FoundBesideTheModelWithItsByteTokens) {
  EXPECT_EQ(tok_.source(), path_);
  EXPECT_EQ(tok_.vocab_size(), 4096);
  EXPECT_EQ(tok_.piece(3), std::string(1, '\0'));
  EXPECT_EQ(tok_.piece(0x0A + 3), "\n");
  EXPECT_EQ(tok_.piece(0xFF + 3), "\xFF");
  EXPECT_TRUE(contains(error_of([&] { Tokenizer::load_llama2c(path_, 512); }), "trailing data"));
  EXPECT_TRUE(contains(error_of([&] { Tokenizer::for_model(model_, 512); }), "tok512.bin"));
  EXPECT_TRUE(contains(error_of([&] { tok_.piece(4096); }), "outside the vocabulary"));
}

TEST_F(Tok4096, DecodesTheReferenceGreedyRun) {
  std::string json;
  KVC_REQUIRE_MODEL_FILE(json, "stories3M.reference.json");
  const testing::ReferenceVectors ref = testing::load_reference_vectors(json);
  std::string text;
  for (std::size_t i = 1; i < ref.tokens.size(); ++i) text += tok_.piece(ref.tokens[i]);
  EXPECT_EQ(text.rfind(" Once upon a time, there was a little girl named Lily.", 0), 0u) << text;
  const std::vector<int> body(ref.tokens.begin() + 1, ref.tokens.end());
  EXPECT_EQ(tok_.decode(body), text.substr(1));
}

TEST_F(Tok4096, RoundTripsRandomUtf8AndMatchesRunC) {
  const RawVocab raw = read_raw_vocab(path_, 4096);
  std::mt19937_64 rng(2024);
  for (int trial = 0; trial < 300; ++trial) {
    const std::string text = random_text(rng);
    const std::vector<int> ids = tok_.encode(text, true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(tok_.decode(ids), text) << "trial " << trial;
    EXPECT_EQ(std::vector<int>(ids.begin() + 1, ids.end()), oracle_encode(raw, text)) << "trial " << trial;
  }
  EXPECT_EQ(tok_.encode("", true), std::vector<int>{1});
  // Ill-formed UTF-8 (a lone lead byte, a stray continuation) still round-trips, by bytes.
  for (const std::string s : {"a\xC3", "\x80x", "\xE2\x96", "\xF0\x9F\x98 z"}) EXPECT_EQ(tok_.decode(tok_.encode(s, false)), s);
}

TEST_F(Tok4096, AGgufVocabularyEncodesTheSame) {
  const RawVocab raw = read_raw_vocab(path_, 4096);
  std::vector<std::string> pieces;
  for (std::string p : raw.pieces) {
    for (std::size_t at = 0; (at = p.find(' ', at)) != std::string::npos;) p.replace(at, 1, "\xE2\x96\x81");
    pieces.push_back(p);
  }
  testing::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", pieces);
  w.add_f32_array("tokenizer.ggml.scores", raw.scores);
  const std::string path = testing::scratch_path("vocab.gguf");
  w.write(path);
  const Tokenizer g = Tokenizer::from_gguf(frontend::GgufFile::open(path));
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const std::string text = random_text(rng);
    EXPECT_EQ(g.encode(text, true), tok_.encode(text, true));
    EXPECT_EQ(g.decode(g.encode(text, true)), text);
  }
  testing::GgufWriter other;
  other.add_string("tokenizer.ggml.model", "gpt2");
  other.add_string_array("tokenizer.ggml.tokens", {"a"});
  other.write(path);
  EXPECT_TRUE(contains(error_of([&] { Tokenizer::from_gguf(frontend::GgufFile::open(path)); }), "'gpt2'"));
}

TEST_F(Tok4096, TruncatedOrCorruptFilesNameTheFileAndOffset) {
  const std::vector<std::uint8_t> bytes = testing::read_file_bytes(path_);
  const std::string path = testing::scratch_path("tok_cut.bin");
  for (std::size_t cut = 0; cut < bytes.size(); cut += cut < 4096 ? 1 : 397) {
    testing::write_file_bytes(path, bytes.data(), cut);
    const std::string e = error_of([&] { Tokenizer::load_llama2c(path, 4096); });
    ASSERT_TRUE(contains(e, path) && contains(e, "offset ")) << "cut at " << cut << ": '" << e << "'";
  }
  auto with_i32 = [&](std::size_t at, std::int32_t v) {
    std::vector<std::uint8_t> b = bytes;
    std::memcpy(b.data() + at, &v, 4);
    testing::write_file_bytes(path, b);
    return error_of([&] { Tokenizer::load_llama2c(path, 4096); });
  };
  EXPECT_TRUE(contains(with_i32(0, 0), "max_token_length"));
  EXPECT_TRUE(contains(with_i32(0, -5), "offset 0"));
  EXPECT_TRUE(contains(with_i32(8, -1), "offset 8"));          // token 0's length
  EXPECT_TRUE(contains(with_i32(8, 1 << 30), "offset 8"));
  EXPECT_TRUE(contains(with_i32(4, 0x7fc00000), "not finite"));  // token 0's score: NaN
}

TEST(Tokenizer, MissingTokenizerSaysWhereItLooked) {
  const std::string model = testing::scratch_path("lonely_model.bin");
  testing::write_file_bytes(model, std::vector<std::uint8_t>(64, 0));
  const std::string e = error_of([&] { Tokenizer::for_model(model, 4096); });
  EXPECT_TRUE(contains(e, "tok4096.bin") && contains(e, "--tokenizer")) << e;
}

}  // namespace
}  // namespace kvc::model
