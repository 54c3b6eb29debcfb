#include "model/llama2c_writer.h"

#include <cmath>
#include <cstring>
#include <random>

namespace kvc::testing {
namespace {

struct Writer {
  std::vector<std::uint8_t>& out;
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  void i32(std::int32_t v) { raw(&v, 4); }
  void f32s(const std::vector<float>& v) { raw(v.data(), v.size() * 4); }
};

}  // namespace

frontend::Llama2cHeader tiny_versioned_header(int version) {
  frontend::Llama2cHeader h;
  h.dim = 16;
  h.hidden = 32;
  h.layers = 2;
  h.heads = 4;
  h.kv_heads = 2;
  h.vocab = 24;
  h.seq_len = 32;
  h.shared_classifier = true;
  h.version = version;
  h.group_size = version == 2 ? 8 : 0;
  return h;
}

VersionedCheckpoint make_versioned_llama2c(const frontend::Llama2cHeader& h, std::uint64_t seed) {
  VersionedCheckpoint c;
  c.expected.header = h;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> code(-127, 127);
  Writer w{c.bytes};
  const std::uint32_t magic = 0x616b3432;
  w.raw(&magic, 4);
  w.i32(h.version);
  for (int f : {h.dim, h.hidden, h.layers, h.heads, h.kv_heads, h.vocab, h.seq_len}) w.i32(f);
  c.bytes.push_back(h.shared_classifier ? 1 : 0);
  if (h.version == 2) w.i32(h.group_size);
  c.bytes.resize(256, 0);

  const std::size_t L = h.layers, dim = h.dim, kvd = h.kv_dim(), hid = h.hidden, vocab = h.vocab;
  auto norms = [&](std::vector<float>& v, std::size_t n) {
    v.resize(n);
    for (float& x : v) x = 1.0f + 0.1f * unit(rng);
    w.f32s(v);
  };
  norms(c.expected.rms_att, L * dim);
  norms(c.expected.rms_ffn, L * dim);
  norms(c.expected.rms_final, dim);
  // One layer's tensor: fp32 values, or codes then scales (and the values they mean).
  auto part = [&](float* expected, std::size_t n) {
    if (h.version == 1) {
      for (std::size_t i = 0; i < n; ++i) expected[i] = unit(rng);
      w.raw(expected, n * 4);
      return;
    }
    std::vector<std::int8_t> codes(n);
    std::vector<float> scales(n / h.group_size);
    for (auto& q : codes) q = static_cast<std::int8_t>(code(rng));
    for (auto& s : scales) s = std::ldexp(1.0f + unit(rng) * 0.5f, -7);
    for (std::size_t i = 0; i < n; ++i) expected[i] = static_cast<float>(codes[i]) * scales[i / h.group_size];
    w.raw(codes.data(), n);
    w.f32s(scales);
  };
  auto tensor = [&](std::vector<float>& v, std::size_t parts, std::size_t per_part) {
    v.resize(parts * per_part);
    for (std::size_t p = 0; p < parts; ++p) part(v.data() + p * per_part, per_part);
  };
  tensor(c.expected.token_embedding, 1, vocab * dim);
  tensor(c.expected.wq, L, dim * dim);
  tensor(c.expected.wk, L, kvd * dim);
  tensor(c.expected.wv, L, kvd * dim);
  tensor(c.expected.wo, L, dim * dim);
  tensor(c.expected.w1, L, hid * dim);
  tensor(c.expected.w2, L, dim * hid);
  tensor(c.expected.w3, L, hid * dim);
  if (!h.shared_classifier) tensor(c.expected.wcls, 1, vocab * dim);
  return c;
}

}  // namespace kvc::testing
