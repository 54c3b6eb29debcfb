// Writes the seed corpora of fuzz/corpus/: copies of the project's own small
// fixtures (specs, bad specs, HF configs) and synthetic inputs no fixture
// provides, each a few KB at most so libFuzzer's mutations stay cheap: tiny GGUF
// and llama2.c models, plans, a stats file. No real model is ever copied here.
//
//   fuzz_make_seeds SOURCE_DIR OUT_DIR     (OUT_DIR is usually SOURCE_DIR/fuzz/corpus)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "stats/stats_file.h"
#include "ir/plan.h"
#include "ir/printer.h"
#include "model/gguf_writer.h"
#include "stats/synthetic_stats.h"

namespace {

namespace fs = std::filesystem;
using kvc::testing::GgufTensorType;
using kvc::testing::GgufWriter;

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  write(path, std::string(bytes.begin(), bytes.end()));
}

// Every regular file under `from` whose name ends in `ext`, flattened into `to`
// (a sub-folder's name becomes a prefix, so config.json files do not collide).
void copy_fixtures(const fs::path& from, const fs::path& to, const std::string& ext) {
  fs::create_directories(to);
  for (const auto& e : fs::recursive_directory_iterator(from)) {
    if (!e.is_regular_file() || e.path().extension() != ext) continue;
    std::string name = fs::relative(e.path(), from).string();
    for (char& c : name)
      if (c == '/') c = '_';
    fs::copy_file(e.path(), to / name, fs::copy_options::overwrite_existing);
  }
}

std::vector<float> random_floats(std::mt19937& rng, std::size_t n) {
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// A llama-shaped GGUF: dim 8, hidden 16, `layers` layers, 2 query heads, 1 KV head,
// vocab 16, context 32; its matrices in `type` (norms stay F32, as llama.cpp writes them).
std::vector<std::uint8_t> tiny_gguf(int layers, GgufTensorType type, bool classifier) {
  constexpr int dim = 8, hidden = 16, heads = 2, kv_heads = 1, vocab = 16, kvd = kv_heads * dim / heads;
  std::mt19937 rng(static_cast<unsigned>(layers * 10 + static_cast<int>(type)));
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", "fuzz-seed");
  w.add_u32("llama.context_length", 32);
  w.add_u32("llama.embedding_length", dim);
  w.add_u32("llama.feed_forward_length", hidden);
  w.add_u32("llama.block_count", static_cast<std::uint32_t>(layers));
  w.add_u32("llama.attention.head_count", heads);
  w.add_u32("llama.attention.head_count_kv", kv_heads);
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_bool("general.fuzz_flag", true);
  w.add_i32("general.fuzz_i32", -7);
  w.add_f32_array("general.fuzz_floats", {0.5f, -1.0f});
  w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  const std::vector<float> ones(dim, 1.0f);
  // Q8_0 blocks hold 32 values and these rows hold 8 or 16: with Q8_0 the model's
  // matrices stay F32 and one extra 32-wide tensor carries the type.
  const GgufTensorType f32 = GgufTensorType::F32;
  const GgufTensorType m = type == GgufTensorType::Q8_0 ? f32 : type;
  w.add_tensor("token_embd.weight", {dim, vocab}, m, random_floats(rng, dim * vocab).data());
  if (type == GgufTensorType::Q8_0) w.add_tensor("fuzz.q8_0", {32, 2}, type, random_floats(rng, 64).data());
  for (int l = 0; l < layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    w.add_tensor(b + "attn_norm.weight", {dim}, f32, ones.data());
    w.add_tensor(b + "attn_q.weight", {dim, dim}, m, random_floats(rng, dim * dim).data());
    w.add_tensor(b + "attn_k.weight", {dim, kvd}, m, random_floats(rng, dim * kvd).data());
    w.add_tensor(b + "attn_v.weight", {dim, kvd}, m, random_floats(rng, dim * kvd).data());
    w.add_tensor(b + "attn_output.weight", {dim, dim}, m, random_floats(rng, dim * dim).data());
    w.add_tensor(b + "ffn_norm.weight", {dim}, f32, ones.data());
    w.add_tensor(b + "ffn_gate.weight", {dim, hidden}, m, random_floats(rng, dim * hidden).data());
    w.add_tensor(b + "ffn_down.weight", {hidden, dim}, m, random_floats(rng, dim * hidden).data());
    w.add_tensor(b + "ffn_up.weight", {dim, hidden}, m, random_floats(rng, dim * hidden).data());
  }
  w.add_tensor("output_norm.weight", {dim}, f32, ones.data());
  if (classifier) w.add_tensor("output.weight", {dim, vocab}, f32, random_floats(rng, dim * vocab).data());
  return w.bytes();
}

// A llama2.c legacy checkpoint (frontend/llama2c.h): dim 8, hidden 16, `layers`
// layers, 2 heads, 1 KV head, vocab 16, seq_len 4; a negative vocab field adds wcls.
std::vector<std::uint8_t> tiny_llama2c(int layers, bool shared_classifier) {
  constexpr std::int32_t dim = 8, hidden = 16, heads = 2, kv_heads = 1, vocab = 16, seq = 4;
  constexpr std::int32_t head_dim = dim / heads, kvd = kv_heads * head_dim;
  const std::int32_t header[7] = {dim, hidden, layers, heads, kv_heads, shared_classifier ? vocab : -vocab, seq};
  std::vector<std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(header),
                                  reinterpret_cast<const std::uint8_t*>(header) + sizeof header);
  const std::int64_t L = layers;
  const std::int64_t floats = vocab * dim + L * dim + L * dim * dim + 2 * L * kvd * dim + L * dim * dim + L * dim +
                              3 * L * hidden * dim + dim + 2 * seq * (head_dim / 2) +
                              (shared_classifier ? 0 : vocab * dim);
  std::mt19937 rng(static_cast<unsigned>(layers));
  const std::vector<float> values = random_floats(rng, static_cast<std::size_t>(floats));
  const auto* p = reinterpret_cast<const std::uint8_t*>(values.data());
  bytes.insert(bytes.end(), p, p + values.size() * sizeof(float));
  return bytes;
}

void append_bytes(std::vector<std::uint8_t>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

// The versioned llama2.c layout (frontend/llama2c.h, magic "ak42") of the same tiny
// shape, version 1 (fp32) or 2 (int8 codes, one fp32 scale per 32 codes); `vocab`
// 32 so that every tensor is whole groups of 32.
std::vector<std::uint8_t> tiny_llama2c_versioned(int version, bool shared_classifier) {
  constexpr std::int32_t dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, vocab = 32, seq = 4;
  constexpr std::int32_t group = 32, kvd = kv_heads * dim / heads;
  std::vector<std::uint8_t> out(256, 0);
  const std::uint32_t magic = 0x616b3432;
  const std::int32_t fields[9] = {version, dim, hidden, layers, heads, kv_heads, vocab, seq, 0};
  std::memcpy(out.data(), &magic, 4);
  std::memcpy(out.data() + 4, fields, 8 * 4);
  out[36] = shared_classifier ? 1 : 0;
  if (version == 2) std::memcpy(out.data() + 37, &group, 4);
  std::mt19937 rng(static_cast<unsigned>(version));
  const std::vector<float> norms(static_cast<std::size_t>(2 * layers * dim + dim), 1.0f);
  append_bytes(out, norms.data(), norms.size() * 4);
  std::vector<std::int64_t> tensors = {vocab * dim, dim * dim, kvd * dim, kvd * dim, dim * dim,
                                       hidden * dim, dim * hidden, hidden * dim};
  if (!shared_classifier) tensors.push_back(vocab * dim);
  for (std::int64_t n : tensors) {
    const std::vector<float> w = random_floats(rng, static_cast<std::size_t>(n));
    if (version == 1) {
      append_bytes(out, w.data(), w.size() * 4);
      continue;
    }
    std::vector<std::int8_t> codes(w.size());
    std::vector<float> scales(w.size() / group, 0.01f);
    for (std::size_t i = 0; i < w.size(); ++i) codes[i] = static_cast<std::int8_t>(std::lround(w[i] * 100.0f));
    append_bytes(out, codes.data(), codes.size());
    append_bytes(out, scales.data(), scales.size() * 4);
  }
  return out;
}

// A llama2.c tokenizer file (model/tokenizer.h) behind the fuzz target's two-byte
// vocabulary size: <unk>, <s>, </s>, the 256 byte tokens when `bytes`, and a few
// merges.
std::vector<std::uint8_t> tiny_tokenizer(bool bytes) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  if (bytes)
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      pieces.push_back(name);
    }
  for (const char* p : {" ", "O", "n", "c", "e", " O", "On", " On", "ce", " Once", "\xc3\xa4"}) pieces.push_back(p);
  const std::uint16_t vocab = static_cast<std::uint16_t>(pieces.size());
  std::vector<std::uint8_t> out;
  append_bytes(out, &vocab, 2);
  std::int32_t max_len = 0;
  for (const std::string& p : pieces) max_len = std::max<std::int32_t>(max_len, static_cast<std::int32_t>(p.size()));
  append_bytes(out, &max_len, 4);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const float score = i < 3 ? 0.0f : -static_cast<float>(pieces.size() - i);
    const std::int32_t len = static_cast<std::int32_t>(pieces[i].size());
    append_bytes(out, &score, 4);
    append_bytes(out, &len, 4);
    append_bytes(out, pieces[i].data(), pieces[i].size());
  }
  return out;
}

// Plans covering every spelling the printer has: formats, each retention policy,
// every low-rank kind, odd names and doubles.
std::vector<kvc::ir::Module> plans() {
  using namespace kvc::ir;
  Module base;
  base.model = {"fuzz \"plan\"\t\xc3\xa9", 4, 8, 2, 64, 500000.0, DType::F16};
  base.workload = {4096, 2, 128};
  base.budget_bytes = 123456789;
  std::vector<Module> out;
  Module a = base;
  for (int i = 0; i < 4; ++i) {
    a.layers.emplace_back();
    a.layers.back().index = i;
  }
  a.layers[1].key = {4, QuantAxis::PerChannel, 32};
  a.layers[1].value = {2, QuantAxis::PerToken, 64};
  a.layers[1].residual = 128;
  a.layers[1].retention = {RetentionPolicy::StreamingLLM, 1024, 4, 32, 0, 0.0};
  a.layers[2].key = {8, QuantAxis::PerToken, 16};
  a.layers[2].retention = {RetentionPolicy::SnapKV, 512, 0, 16, 7, 0.0};
  a.layers[2].lowrank = {32, BasisSharing::PerLayer, -1, BasisSource::Prefill};
  a.layers[3].key = {3, QuantAxis::PerChannel, 128};
  a.layers[3].retention = {RetentionPolicy::CAKE, 700, 0, 32, 5, 0.37};
  a.layers[3].lowrank = {16, BasisSharing::CrossLayer, 0, BasisSource::Calibrated};
  out.push_back(a);
  Module b = base;
  b.model.name = "h2o";
  b.model.rope_theta = 1e-9;
  for (int i = 0; i < 2; ++i) {
    LayerPlan l;
    l.index = i;
    l.retention = {RetentionPolicy::H2O, 256, 2, 16, 0, 0.0};
    l.lowrank = {8, BasisSharing::CrossLayer, 3, BasisSource::Prefill};
    b.layers.push_back(l);
  }
  out.push_back(b);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SOURCE_DIR OUT_DIR\n", argv[0]);
    return 2;
  }
  const fs::path src(argv[1]), out(argv[2]);
  copy_fixtures(src / "specs", out / "spec", ".yaml");
  copy_fixtures(src / "tests/frontend/bad_specs", out / "spec", ".yaml");
  copy_fixtures(src / "tests/frontend/fixtures/hf", out / "hf_config", ".json");

  const std::vector<kvc::ir::Module> modules = plans();
  for (std::size_t i = 0; i < modules.size(); ++i)
    write(out / "ir_parser" / ("plan" + std::to_string(i) + ".kvc"), kvc::ir::print_module(modules[i]));

  const std::vector<std::uint8_t> gguf_f32 = tiny_gguf(1, GgufTensorType::F32, false);
  write(out / "gguf/f32.gguf", gguf_f32);
  write(out / "gguf/f16.gguf", tiny_gguf(1, GgufTensorType::F16, true));
  write(out / "gguf/bf16.gguf", tiny_gguf(1, GgufTensorType::BF16, false));
  write(out / "gguf/q8_0.gguf", tiny_gguf(1, GgufTensorType::Q8_0, false));
  write(out / "model_load/f32.gguf", gguf_f32);
  write(out / "model_load/two_layers.gguf", tiny_gguf(2, GgufTensorType::F16, true));
  write(out / "llama2c/shared.bin", tiny_llama2c(1, true));
  write(out / "llama2c/wcls.bin", tiny_llama2c(2, false));
  write(out / "model_load/shared.bin", tiny_llama2c(1, true));
  write(out / "model_load/wcls.bin", tiny_llama2c(1, false));
  write(out / "llama2c/v1.bin", tiny_llama2c_versioned(1, true));
  write(out / "llama2c/v2.bin", tiny_llama2c_versioned(2, true));
  write(out / "llama2c/v2_wcls.bin", tiny_llama2c_versioned(2, false));
  write(out / "model_load/v1_wcls.bin", tiny_llama2c_versioned(1, false));
  write(out / "model_load/v2.bin", tiny_llama2c_versioned(2, true));
  write(out / "tokenizer/bytes.bin", tiny_tokenizer(true));
  write(out / "tokenizer/no_bytes.bin", tiny_tokenizer(false));

  kvc::ir::ModelShape shape{"fuzz-stats", 1, 2, 1, 8, 10000.0, kvc::ir::DType::F16};
  kvc::calibration::SyntheticStatsOptions options;
  options.sequences = 1;
  options.length = 16;
  options.prefix_points = 4;
  options.max_group = 1;
  write(out / "stats_file/tiny.kvcstats", kvc::calibration::serialize_stats(kvc::calibration::synthetic_stats(shape, options)));
  std::printf("seeds written under %s\n", out.string().c_str());
  return 0;
}
