#pragma once
// GGUF files (versions 2 and 3, little-endian): the metadata key/value pairs and
// the tensor directory, read with every length, count and offset checked against
// the file size before it is used; tensor data is read on demand and converted
// to fp32 (F32, F16, BF16 and Q8_0 tensors).
//
// Layout: "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count pairs
// (string key, u32 value type, value); tensor_count infos (string name, u32
// n_dims, u64 ne[n_dims] fastest-first, u32 ggml type, u64 offset relative to the
// data section); padding to general.alignment (default 32); the data section.
// A string is a u64 byte length and the bytes; an array is a u32 element type, a
// u64 count and the elements.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "frontend/model_file.h"

namespace kvc::frontend {

enum class GgufValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* to_string(GgufValueType);

// The ggml tensor types this reader converts. Other types are listed in the
// directory (their names and shapes are still readable) but cannot be loaded.
enum class GgmlType : std::uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };
std::string ggml_type_name(std::uint32_t type);

struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  // Exactly one of these is meaningful, by `type`: integers of every width in
  // `i` (u64 values above INT64_MAX are rejected while reading), floats in `f`.
  std::int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  GgufValueType array_type = GgufValueType::U8;
  std::vector<GgufValue> array;

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::F32 || type == GgufValueType::F64; }
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> ne;  // fastest-first: ne[0] is the row length
  std::uint32_t type = 0;        // ggml type id
  std::uint64_t offset = 0;      // relative to the data section
  std::int64_t elements() const;
  std::int64_t info_offset = 0;  // where this tensor's info starts in the file (for messages)
};

class GgufFile {
 public:
  // Parses the header, metadata and tensor directory. Throws kvc::Error naming
  // the file and the byte offset (or key) at fault.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return path_; }
  std::uint32_t version() const { return version_; }
  std::uint32_t alignment() const { return alignment_; }
  std::uint64_t data_offset() const { return data_offset_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  // Typed metadata access: throw kvc::Error naming the key when it is missing
  // (the versions without a default) or has the wrong type.
  std::int64_t get_int(const std::string& key) const;
  std::int64_t get_int(const std::string& key, std::int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key) const;

  // The tensor's elements in fp32, row-major with ne[0] fastest.
  std::vector<float> read_tensor_f32(const GgufTensorInfo& t) const;

 private:
  std::string path_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::uint64_t file_size_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

// The attention shape from the `{general.architecture}.*` keys (llama-family
// naming: block_count, attention.head_count, ...).
ModelFileInfo gguf_model_info(const GgufFile& file);
ModelFileInfo read_gguf_info(const std::string& path);

}  // namespace kvc::frontend
