#include "model/gguf_writer.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "support/half.h"

namespace kvc::testing {
namespace {

template <class T>
void put(std::vector<std::uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}
void put_string(std::vector<std::uint8_t>& out, const std::string& s) {
  put<std::uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace

std::uint16_t float_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7FFF + ((bits >> 16) & 1);  // round to nearest, ties to even (finite inputs)
  return static_cast<std::uint16_t>(bits >> 16);
}

// llama.cpp's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d).
std::vector<std::uint8_t> quantize_q8_0(const float* x, std::int64_t n) {
  if (n % 32 != 0) throw std::invalid_argument("Q8_0 needs a multiple of 32 values");
  std::vector<std::uint8_t> out;
  out.reserve(static_cast<std::size_t>(n / 32 * 34));
  for (std::int64_t b = 0; b < n; b += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put<std::uint16_t>(out, kvc::float_to_half(d));
    for (int j = 0; j < 32; ++j) out.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(std::round(x[b + j] * id))));
  }
  return out;
}

void GgufWriter::begin_kv(const std::string& key, std::uint32_t type) {
  ++kv_count_;
  put_string(kv_bytes_, key);
  put<std::uint32_t>(kv_bytes_, type);
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  begin_kv(key, 8);
  put_string(kv_bytes_, value);
}
void GgufWriter::add_u32(const std::string& key, std::uint32_t value) {
  begin_kv(key, 4);
  put(kv_bytes_, value);
}
void GgufWriter::add_i32(const std::string& key, std::int32_t value) {
  begin_kv(key, 5);
  put(kv_bytes_, value);
}
void GgufWriter::add_f32(const std::string& key, float value) {
  begin_kv(key, 6);
  put(kv_bytes_, value);
}
void GgufWriter::add_bool(const std::string& key, bool value) {
  begin_kv(key, 7);
  put<std::uint8_t>(kv_bytes_, value ? 1 : 0);
}
void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  begin_kv(key, 9);
  put<std::uint32_t>(kv_bytes_, 8);
  put<std::uint64_t>(kv_bytes_, values.size());
  for (const std::string& s : values) put_string(kv_bytes_, s);
}
void GgufWriter::add_f32_array(const std::string& key, const std::vector<float>& values) {
  begin_kv(key, 9);
  put<std::uint32_t>(kv_bytes_, 6);
  put<std::uint64_t>(kv_bytes_, values.size());
  for (float f : values) put(kv_bytes_, f);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<std::int64_t>& ne, GgufTensorType type,
                            const float* data) {
  std::int64_t n = 1;
  for (std::int64_t d : ne) n *= d;
  std::vector<std::uint8_t> bytes;
  switch (type) {
    case GgufTensorType::F32:
      bytes.resize(static_cast<std::size_t>(n) * 4);
      std::memcpy(bytes.data(), data, bytes.size());
      break;
    case GgufTensorType::F16:
      for (std::int64_t i = 0; i < n; ++i) put<std::uint16_t>(bytes, kvc::float_to_half(data[i]));
      break;
    case GgufTensorType::BF16:
      for (std::int64_t i = 0; i < n; ++i) put<std::uint16_t>(bytes, float_to_bf16(data[i]));
      break;
    case GgufTensorType::Q8_0: bytes = quantize_q8_0(data, n); break;
  }
  add_raw_tensor(name, ne, static_cast<std::uint32_t>(type), std::move(bytes));
}

void GgufWriter::add_raw_tensor(const std::string& name, const std::vector<std::int64_t>& ne, std::uint32_t ggml_type,
                                std::vector<std::uint8_t> bytes) {
  tensors_.push_back(Tensor{name, ne, ggml_type, std::move(bytes)});
}

std::vector<std::uint8_t> GgufWriter::bytes() const {
  auto align = [this](std::uint64_t x) { return (x + alignment_ - 1) / alignment_ * alignment_; };
  std::vector<std::uint8_t> out;
  out.insert(out.end(), {'G', 'G', 'U', 'F'});
  put<std::uint32_t>(out, 3);
  put<std::uint64_t>(out, tensors_.size());
  put<std::uint64_t>(out, kv_count_);
  out.insert(out.end(), kv_bytes_.begin(), kv_bytes_.end());
  std::uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.ne.size()));
    for (std::int64_t d : t.ne) put<std::uint64_t>(out, static_cast<std::uint64_t>(d));
    put<std::uint32_t>(out, t.type);
    put<std::uint64_t>(out, offset);
    offset = align(offset + t.data.size());
  }
  out.resize(align(out.size()), 0);
  const std::size_t data_start = out.size();
  offset = 0;
  for (const Tensor& t : tensors_) {
    out.resize(data_start + offset, 0);
    out.insert(out.end(), t.data.begin(), t.data.end());
    offset = align(offset + t.data.size());
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<std::uint8_t> b = bytes();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace kvc::testing
