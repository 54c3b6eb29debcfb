#pragma once
// A small GGUF v3 writer, for tests: metadata of the common types and tensors in
// F32, F16, BF16 and Q8_0 (converted here from fp32 the way llama.cpp's
// converters do), or raw bytes of any ggml type.
#include <cstdint>
#include <string>
#include <vector>

namespace kvc::testing {

enum class GgufTensorType : std::uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };

class GgufWriter {
 public:
  explicit GgufWriter(std::uint32_t alignment = 32) : alignment_(alignment) {}

  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, std::uint32_t value);
  void add_i32(const std::string& key, std::int32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_f32_array(const std::string& key, const std::vector<float>& values);

  // ne is fastest-first (ne[0] = row length); data holds prod(ne) floats, row-major.
  void add_tensor(const std::string& name, const std::vector<std::int64_t>& ne, GgufTensorType type,
                  const float* data);
  void add_raw_tensor(const std::string& name, const std::vector<std::int64_t>& ne, std::uint32_t ggml_type,
                      std::vector<std::uint8_t> bytes);

  std::vector<std::uint8_t> bytes() const;
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<std::int64_t> ne;
    std::uint32_t type;
    std::vector<std::uint8_t> data;
  };
  void begin_kv(const std::string& key, std::uint32_t type);

  std::uint32_t alignment_;
  std::uint64_t kv_count_ = 0;
  std::vector<std::uint8_t> kv_bytes_;
  std::vector<Tensor> tensors_;
};

// Encoders, exposed for tests of the reader's decoders.
std::uint16_t float_to_bf16(float f);
std::vector<std::uint8_t> quantize_q8_0(const float* data, std::int64_t n);

}  // namespace kvc::testing
