#include "frontend/gguf.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::frontend {
namespace {

[[noreturn]] void fail_at(const std::string& path, std::uint64_t offset, const std::string& message) {
  throw Error(SourceLocation{path, 0, 0}, "offset " + std::to_string(offset), message);
}
[[noreturn]] void fail_key(const std::string& path, const std::string& key, const std::string& message) {
  throw Error(SourceLocation{path, 0, 0}, "key '" + key + "'", message);
}

// Nested arrays are legal GGUF but never deeper than this in practice; the cap
// keeps a corrupt file from recursing until the stack runs out.
constexpr int kMaxArrayDepth = 4;
// GGML_MAX_DIMS.
constexpr std::uint32_t kMaxDims = 4;

// Sequential reads from the file with every read checked against the file size
// first, so a corrupt length can neither read past the end nor make us allocate
// more than the file could hold.
class Cursor {
 public:
  Cursor(const std::string& path, std::uint64_t size) : path_(path), size_(size), in_(path, std::ios::binary) {
    if (!in_) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  }
  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return size_ - pos_; }

  void need(std::uint64_t n, const std::string& what) {
    if (n > remaining())
      fail_at(path_, pos_, "file ends inside " + what + ": " + std::to_string(n) + " bytes expected, " +
                               std::to_string(remaining()) + " left");
  }
  void read_bytes(void* dst, std::uint64_t n, const std::string& what) {
    need(n, what);
    in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in_) fail_at(path_, pos_, "read error inside " + what);
    pos_ += n;
  }
  template <class T>
  T read(const std::string& what) {
    T v;
    read_bytes(&v, sizeof v, what);
    return v;
  }
  std::string read_string(const std::string& what) {
    const std::uint64_t at = pos_;
    const auto len = read<std::uint64_t>(what + " (string length)");
    if (len > remaining())
      fail_at(path_, at, what + ": string length " + std::to_string(len) + " exceeds the " +
                             std::to_string(remaining()) + " bytes left in the file");
    std::string s(static_cast<std::size_t>(len), '\0');
    read_bytes(s.data(), len, what);
    return s;
  }

 private:
  std::string path_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  std::ifstream in_;
};

// Bytes one element takes at least, to bound an array count by the bytes left.
std::uint64_t min_element_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::Bool: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: case GgufValueType::String: return 8;
    case GgufValueType::Array: return 12;
  }
  return 1;
}

bool valid_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(GgufValueType::F64); }

GgufValue read_value(Cursor& c, const std::string& path, GgufValueType type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  const std::string what = "the value of '" + key + "'";
  switch (type) {
    case GgufValueType::U8: v.i = c.read<std::uint8_t>(what); break;
    case GgufValueType::I8: v.i = c.read<std::int8_t>(what); break;
    case GgufValueType::U16: v.i = c.read<std::uint16_t>(what); break;
    case GgufValueType::I16: v.i = c.read<std::int16_t>(what); break;
    case GgufValueType::U32: v.i = c.read<std::uint32_t>(what); break;
    case GgufValueType::I32: v.i = c.read<std::int32_t>(what); break;
    case GgufValueType::I64: v.i = c.read<std::int64_t>(what); break;
    case GgufValueType::U64: {
      const std::uint64_t at = c.pos();
      const auto u = c.read<std::uint64_t>(what);
      if (u > static_cast<std::uint64_t>(INT64_MAX))
        fail_at(path, at, "'" + key + "': u64 value " + std::to_string(u) + " is out of range");
      v.i = static_cast<std::int64_t>(u);
      break;
    }
    case GgufValueType::F32: v.f = c.read<float>(what); break;
    case GgufValueType::F64: v.f = c.read<double>(what); break;
    case GgufValueType::Bool: {
      const std::uint64_t at = c.pos();
      const auto b = c.read<std::uint8_t>(what);
      if (b > 1) fail_at(path, at, "'" + key + "': bool value " + std::to_string(b) + ", expected 0 or 1");
      v.b = b != 0;
      break;
    }
    case GgufValueType::String: v.s = c.read_string(what); break;
    case GgufValueType::Array: {
      if (depth >= kMaxArrayDepth)
        fail_at(path, c.pos(), "'" + key + "': arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      std::uint64_t at = c.pos();
      const auto et = c.read<std::uint32_t>(what + " (array element type)");
      if (!valid_value_type(et))
        fail_at(path, at, "'" + key + "': array element type " + std::to_string(et) + ", expected 0..12");
      v.array_type = static_cast<GgufValueType>(et);
      at = c.pos();
      const auto n = c.read<std::uint64_t>(what + " (array length)");
      if (n > c.remaining() / min_element_bytes(v.array_type))
        fail_at(path, at, "'" + key + "': array of " + std::to_string(n) + " " + to_string(v.array_type) +
                              " elements cannot fit in the " + std::to_string(c.remaining()) +
                              " bytes left in the file");
      v.array.reserve(static_cast<std::size_t>(n));
      for (std::uint64_t i = 0; i < n; ++i) v.array.push_back(read_value(c, path, v.array_type, key, depth + 1));
      break;
    }
  }
  return v;
}

// Block geometry of ggml types, for bounds checks of tensors in any common
// type (read_model_info must work on quantized real-world files too).
struct BlockGeometry {
  std::int64_t elements = 0;  // 0 = unknown type
  std::int64_t bytes = 0;
};
BlockGeometry block_geometry(std::uint32_t type) {
  switch (type) {
    case 0: return {1, 4};      // F32
    case 1: return {1, 2};      // F16
    case 2: return {32, 18};    // Q4_0
    case 3: return {32, 20};    // Q4_1
    case 6: return {32, 22};    // Q5_0
    case 7: return {32, 24};    // Q5_1
    case 8: return {32, 34};    // Q8_0
    case 9: return {32, 36};    // Q8_1
    case 10: return {256, 84};  // Q2_K
    case 11: return {256, 110}; // Q3_K
    case 12: return {256, 144}; // Q4_K
    case 13: return {256, 176}; // Q5_K
    case 14: return {256, 210}; // Q6_K
    case 15: return {256, 292}; // Q8_K
    case 24: return {1, 1};     // I8
    case 25: return {1, 2};     // I16
    case 26: return {1, 4};     // I32
    case 27: return {1, 8};     // I64
    case 28: return {1, 8};     // F64
    case 30: return {1, 2};     // BF16
    default: return {};
  }
}

std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }

std::string shape_string(const std::vector<std::int64_t>& ne) {
  std::string s = "[";
  for (std::size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

const char* to_string(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: return "u8";
    case GgufValueType::I8: return "i8";
    case GgufValueType::U16: return "u16";
    case GgufValueType::I16: return "i16";
    case GgufValueType::U32: return "u32";
    case GgufValueType::I32: return "i32";
    case GgufValueType::F32: return "f32";
    case GgufValueType::Bool: return "bool";
    case GgufValueType::String: return "string";
    case GgufValueType::Array: return "array";
    case GgufValueType::U64: return "u64";
    case GgufValueType::I64: return "i64";
    case GgufValueType::F64: return "f64";
  }
  return "?";
}

std::string ggml_type_name(std::uint32_t type) {
  switch (type) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 6: return "Q5_0";
    case 7: return "Q5_1";
    case 8: return "Q8_0";
    case 9: return "Q8_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K";
    case 12: return "Q4_K";
    case 13: return "Q5_K";
    case 14: return "Q6_K";
    case 15: return "Q8_K";
    case 30: return "BF16";
    default: return "ggml type " + std::to_string(type);
  }
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16: case GgufValueType::I16:
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::U64: case GgufValueType::I64:
      return true;
    default:
      return false;
  }
}

std::int64_t GgufTensorInfo::elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : ne) n *= d;  // overflow excluded when the directory was read
  return n;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile g;
  g.path_ = path;
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(SourceLocation{path, 0, 0}, "", "cannot read model file: " + ec.message());
  g.file_size_ = size;
  Cursor c(path, size);

  char magic[4];
  c.read_bytes(magic, 4, "the GGUF magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) fail_at(path, 0, "not a GGUF file (expected the magic \"GGUF\")");
  g.version_ = c.read<std::uint32_t>("the GGUF version");
  if (g.version_ != 2 && g.version_ != 3)
    fail_at(path, 4, "GGUF version " + std::to_string(g.version_) +
                         " is not supported (expected 3, or 2; a huge number means a big-endian file)");
  const auto tensor_count = c.read<std::uint64_t>("the tensor count");
  const auto kv_count = c.read<std::uint64_t>("the metadata count");
  // Every tensor info takes at least 8 (name) + 4 + 8 + 4 + 8 bytes, every pair 8 + 4 + 1.
  if (tensor_count > c.remaining() / 32)
    fail_at(path, 8, "tensor count " + std::to_string(tensor_count) + " cannot fit in a file of " +
                         std::to_string(size) + " bytes");
  if (kv_count > c.remaining() / 13)
    fail_at(path, 16, "metadata count " + std::to_string(kv_count) + " cannot fit in a file of " +
                          std::to_string(size) + " bytes");

  for (std::uint64_t i = 0; i < kv_count; ++i) {
    const std::uint64_t at = c.pos();
    std::string key = c.read_string("metadata key #" + std::to_string(i));
    const std::uint64_t type_at = c.pos();
    const auto type = c.read<std::uint32_t>("the value type of '" + key + "'");
    if (!valid_value_type(type))
      fail_at(path, type_at, "'" + key + "': value type " + std::to_string(type) + ", expected 0..12");
    GgufValue v = read_value(c, path, static_cast<GgufValueType>(type), key, 0);
    if (g.metadata_.count(key)) fail_at(path, at, "duplicate metadata key '" + key + "'");
    g.metadata_.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = g.find("general.alignment")) {
    if (a->type != GgufValueType::U32 || a->i == 0 || (a->i & (a->i - 1)) != 0)
      fail_key(path, "general.alignment", "expected a u32 power of two, found " + std::string(to_string(a->type)) +
                                              (a->is_integer() ? " " + std::to_string(a->i) : ""));
    g.alignment_ = static_cast<std::uint32_t>(a->i);
  }

  g.tensors_.reserve(static_cast<std::size_t>(tensor_count));
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t;
    t.info_offset = static_cast<std::int64_t>(c.pos());
    t.name = c.read_string("the name of tensor #" + std::to_string(i));
    const std::string what = "the info of tensor '" + t.name + "'";
    const std::uint64_t dims_at = c.pos();
    const auto n_dims = c.read<std::uint32_t>(what);
    if (n_dims == 0 || n_dims > kMaxDims)
      fail_at(path, dims_at, "tensor '" + t.name + "': n_dims " + std::to_string(n_dims) + ", expected 1.." +
                                 std::to_string(kMaxDims));
    std::int64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t at = c.pos();
      const auto n = c.read<std::uint64_t>(what);
      if (n == 0 || n > static_cast<std::uint64_t>(INT64_MAX) ||
          __builtin_mul_overflow(elements, static_cast<std::int64_t>(n), &elements))
        fail_at(path, at, "tensor '" + t.name + "': dimension " + std::to_string(d) + " is " + std::to_string(n) +
                              ", expected a positive size whose product with the others fits in 64 bits");
      t.ne.push_back(static_cast<std::int64_t>(n));
    }
    const std::uint64_t type_at = c.pos();
    t.type = c.read<std::uint32_t>(what);
    const std::uint64_t offset_at = c.pos();
    t.offset = c.read<std::uint64_t>(what);
    const BlockGeometry bg = block_geometry(t.type);
    if (bg.elements == 0 && t.type > 64)
      fail_at(path, type_at, "tensor '" + t.name + "': type " + std::to_string(t.type) + " is not a ggml type");
    if (bg.elements != 0 && t.ne[0] % bg.elements != 0)
      fail_at(path, type_at, "tensor '" + t.name + "': row length " + std::to_string(t.ne[0]) + " is not a multiple of " +
                                 ggml_type_name(t.type) + "'s block of " + std::to_string(bg.elements));
    if (t.offset % g.alignment_ != 0)
      fail_at(path, offset_at, "tensor '" + t.name + "': data offset " + std::to_string(t.offset) +
                                   " is not a multiple of the alignment " + std::to_string(g.alignment_));
    if (g.find_tensor(t.name)) fail_at(path, static_cast<std::uint64_t>(t.info_offset), "duplicate tensor '" + t.name + "'");
    // Sizes are checked against the file once the data section's start is known.
    t.info_offset = static_cast<std::int64_t>(offset_at);  // report data problems at the offset field
    g.tensors_.push_back(std::move(t));
  }

  g.data_offset_ = align_up(c.pos(), g.alignment_);
  if (g.data_offset_ > size)
    fail_at(path, c.pos(), "file ends before the data section (expected it at offset " +
                               std::to_string(g.data_offset_) + ", the file has " + std::to_string(size) + " bytes)");
  const std::uint64_t data_bytes = size - g.data_offset_;
  for (const GgufTensorInfo& t : g.tensors_) {
    const BlockGeometry bg = block_geometry(t.type);
    std::uint64_t nbytes = 0;  // unknown types: only the start is checked
    // Up to 4 bytes per element on 2^63 elements can pass 2^64: a wrapped size
    // would pass the bounds check below (fuzz/gguf.cpp found one).
    bool overflows = false;
    if (bg.elements != 0)
      overflows = __builtin_mul_overflow(static_cast<std::uint64_t>(t.elements() / bg.elements),
                                         static_cast<std::uint64_t>(bg.bytes), &nbytes);
    if (overflows || t.offset > data_bytes || nbytes > data_bytes - t.offset)
      fail_at(path, static_cast<std::uint64_t>(t.info_offset),
              "tensor '" + t.name + "' (" + ggml_type_name(t.type) + " " + shape_string(t.ne) + ", " +
                  (overflows ? std::string("more than 2^64") : std::to_string(nbytes)) + " bytes at data offset " +
                  std::to_string(t.offset) +
                  ") extends past the end of the file (data section of " + std::to_string(data_bytes) +
                  " bytes at file offset " + std::to_string(g.data_offset_) + "; truncated?)");
  }
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const GgufTensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(path_, key, "missing (expected an integer)");
  if (!v->is_integer()) fail_key(path_, key, std::string("expected an integer, found ") + to_string(v->type));
  return v->i;
}

std::int64_t GgufFile::get_int(const std::string& key, std::int64_t fallback) const {
  return find(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(v->i);
  fail_key(path_, key, std::string("expected a number, found ") + to_string(v->type));
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(path_, key, "missing (expected a string)");
  if (v->type != GgufValueType::String) fail_key(path_, key, std::string("expected a string, found ") + to_string(v->type));
  return v->s;
}

std::vector<float> GgufFile::read_tensor_f32(const GgufTensorInfo& t) const {
  const BlockGeometry bg = block_geometry(t.type);
  const bool supported = t.type == static_cast<std::uint32_t>(GgmlType::F32) ||
                         t.type == static_cast<std::uint32_t>(GgmlType::F16) ||
                         t.type == static_cast<std::uint32_t>(GgmlType::BF16) ||
                         t.type == static_cast<std::uint32_t>(GgmlType::Q8_0);
  if (!supported)
    fail_at(path_, static_cast<std::uint64_t>(t.info_offset),
            "tensor '" + t.name + "' has type " + ggml_type_name(t.type) + "; supported: F32, F16, BF16, Q8_0");
  const std::int64_t n = t.elements();
  const std::uint64_t nbytes = static_cast<std::uint64_t>(n / bg.elements) * static_cast<std::uint64_t>(bg.bytes);
  std::vector<unsigned char> raw(static_cast<std::size_t>(nbytes));
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_offset_ + t.offset));
  in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(nbytes));
  if (!in)
    fail_at(path_, data_offset_ + t.offset, "cannot read the " + std::to_string(nbytes) + " bytes of tensor '" +
                                                t.name + "' (file changed since it was opened?)");

  std::vector<float> out(static_cast<std::size_t>(n));
  switch (static_cast<GgmlType>(t.type)) {
    case GgmlType::F32: std::memcpy(out.data(), raw.data(), nbytes); break;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, raw.data() + 2 * i, 2);
        out[i] = t.type == static_cast<std::uint32_t>(GgmlType::F16) ? half_to_float(h) : bf16_to_float(h);
      }
      break;
    case GgmlType::Q8_0:
      // Block of 32: fp16 scale d, then 32 int8 codes; value = d * q.
      for (std::int64_t b = 0; b < n / 32; ++b) {
        const unsigned char* blk = raw.data() + 34 * b;
        std::uint16_t h;
        std::memcpy(&h, blk, 2);
        const float d = half_to_float(h);
        for (int j = 0; j < 32; ++j) out[32 * b + j] = d * static_cast<float>(static_cast<std::int8_t>(blk[2 + j]));
      }
      break;
  }
  return out;
}

namespace {

int int_in_range(const GgufFile& g, const std::string& key, std::int64_t v, std::int64_t lo, std::int64_t hi) {
  if (v < lo || v > hi)
    fail_key(g.path(), key, "value " + std::to_string(v) + " is out of range (expected " + std::to_string(lo) + ".." +
                                std::to_string(hi) + ")");
  return static_cast<int>(v);
}

}  // namespace

ModelFileInfo gguf_model_info(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture");
  if (arch.empty()) fail_key(g.path(), "general.architecture", "is empty");
  const std::string p = arch + ".";
  constexpr std::int64_t kBig = 1 << 24;
  ModelFileInfo info;
  info.format = "gguf";
  const GgufValue* name = g.find("general.name");
  info.shape.name = name && name->type == GgufValueType::String && !name->s.empty()
                        ? name->s
                        : std::filesystem::path(g.path()).stem().string();
  info.shape.layers = int_in_range(g, p + "block_count", g.get_int(p + "block_count"), 1, kBig);
  info.dim = int_in_range(g, p + "embedding_length", g.get_int(p + "embedding_length"), 1, kBig);
  info.shape.q_heads = int_in_range(g, p + "attention.head_count", g.get_int(p + "attention.head_count"), 1, kBig);
  info.shape.kv_heads = int_in_range(g, p + "attention.head_count_kv",
                                     g.get_int(p + "attention.head_count_kv", info.shape.q_heads), 1, kBig);
  if (info.shape.q_heads % info.shape.kv_heads != 0)
    fail_key(g.path(), p + "attention.head_count_kv",
             std::to_string(info.shape.kv_heads) + " KV heads do not divide " + std::to_string(info.shape.q_heads) +
                 " query heads");
  if (g.find(p + "attention.key_length")) {
    info.shape.head_dim = int_in_range(g, p + "attention.key_length", g.get_int(p + "attention.key_length"), 1, kBig);
  } else {
    if (info.dim % info.shape.q_heads != 0)
      fail_key(g.path(), p + "attention.head_count",
               std::to_string(info.shape.q_heads) + " heads do not divide embedding_length " + std::to_string(info.dim) +
                   " (and attention.key_length is absent)");
    info.shape.head_dim = info.dim / info.shape.q_heads;
  }
  info.hidden = int_in_range(g, p + "feed_forward_length", g.get_int(p + "feed_forward_length", 0), 0, kBig);
  info.context = g.get_int(p + "context_length", 0);
  if (info.context < 0) fail_key(g.path(), p + "context_length", "is negative");
  info.shape.rope_theta = g.get_float(p + "rope.freq_base", 10000.0);
  if (!(info.shape.rope_theta > 0.0))
    fail_key(g.path(), p + "rope.freq_base", "expected a positive number, found " + std::to_string(info.shape.rope_theta));
  info.shape.cache_dtype = ir::DType::F16;
  if (g.find(p + "vocab_size")) {
    info.vocab = int_in_range(g, p + "vocab_size", g.get_int(p + "vocab_size"), 1, INT32_MAX);
  } else if (const GgufValue* tokens = g.find("tokenizer.ggml.tokens"); tokens && tokens->type == GgufValueType::Array) {
    info.vocab = static_cast<int>(std::min<std::size_t>(tokens->array.size(), INT32_MAX));
  } else if (const GgufTensorInfo* emb = g.find_tensor("token_embd.weight"); emb && emb->ne.size() >= 2) {
    info.vocab = static_cast<int>(std::min<std::int64_t>(emb->ne[1], INT32_MAX));
  }
  return info;
}

ModelFileInfo read_gguf_info(const std::string& path) { return gguf_model_info(GgufFile::open(path)); }

}  // namespace kvc::frontend
