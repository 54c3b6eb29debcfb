#include "frontend/hf_config.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/diagnostics.h"

namespace kvc::frontend {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr std::int64_t kMaxDim = 1 << 20;

// nlohmann keeps no positions, so key positions come from a second, tiny scan of
// the (already validated) text: byte offset of every object key by its path,
// "num_hidden_layers" or "text_config.num_hidden_layers".
std::map<std::string, std::size_t> key_offsets(const std::string& text) {
  struct Frame {
    bool object;
    bool expect_key;
    std::string key;
  };
  std::map<std::string, std::size_t> out;
  std::vector<Frame> stack;
  auto path_of = [&](const std::string& key) {
    std::string p;
    for (const Frame& f : stack)
      if (f.object && &f != &stack.back()) p += f.key + ".";
    return p + key;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const std::size_t start = i;
      std::string s;
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;  // the escaped character never ends the string
        else s += text[i];
      }
      if (!stack.empty() && stack.back().object && stack.back().expect_key) {
        out.emplace(path_of(s), start);
        stack.back().key = s;
        stack.back().expect_key = false;
      }
    } else if (c == '{') {
      stack.push_back({true, true, {}});
    } else if (c == '[') {
      stack.push_back({false, false, {}});
    } else if ((c == '}' || c == ']') && !stack.empty()) {
      stack.pop_back();
    } else if (c == ',' && !stack.empty() && stack.back().object) {
      stack.back().expect_key = true;
    }
  }
  return out;
}

// 1-based line and column of a 0-based byte offset.
SourceLocation location_at(const std::string& file, const std::string& text, std::size_t offset) {
  offset = std::min(offset, text.size());
  int line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset; ++i)
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  return SourceLocation{file, line, static_cast<int>(offset - line_start) + 1};
}

class ConfigReader {
 public:
  ConfigReader(std::string file, std::string text) : file_(std::move(file)), text_(std::move(text)) {}

  ModelFileInfo read() {
    try {
      root_ = json::parse(text_);
    } catch (const json::parse_error& e) {
      // e.byte is the 1-based index of the last byte read: the one at fault.
      const std::size_t at = e.byte > 0 ? e.byte - 1 : 0;
      std::string what = e.what();
      if (auto col = what.find("column "); col != std::string::npos)
        if (auto colon = what.find(": ", col); colon != std::string::npos) what = what.substr(colon + 2);
      throw Error(location_at(file_, text_, at), "", "JSON syntax error: " + what);
    } catch (const json::out_of_range& e) {
      // A number beyond double ("1e4336"): well-formed JSON, but nlohmann's
      // out_of_range carries no position, only the literal in quotes; point at
      // its first occurrence.
      const std::string what = e.what();
      const std::size_t open = what.find('\''), close = what.rfind('\'');
      const std::string literal = open < close ? what.substr(open + 1, close - open - 1) : std::string();
      const std::size_t at = literal.empty() ? std::string::npos : text_.find(literal);
      throw Error(at == std::string::npos ? SourceLocation{file_, 0, 0} : location_at(file_, text_, at), "",
                  "JSON number out of range: " + (literal.empty() ? what : literal));
    }
    if (!root_.is_object()) throw Error(SourceLocation{file_, 1, 1}, "", "a config.json must hold a JSON object");
    offsets_ = key_offsets(text_);

    // Multimodal configs nest the language model's shape under text_config.
    const json* cfg = &root_;
    if (!root_.contains("num_hidden_layers") && root_.contains("text_config") && root_["text_config"].is_object()) {
      cfg = &root_["text_config"];
      prefix_ = "text_config.";
    }
    ModelFileInfo info;
    info.format = "hf-config";
    ir::ModelShape& shape = info.shape;
    shape.layers = static_cast<int>(integer(*cfg, "num_hidden_layers", true, 1, kMaxDim));
    shape.q_heads = static_cast<int>(integer(*cfg, "num_attention_heads", true, 1, kMaxDim));
    const std::int64_t kv = integer(*cfg, "num_key_value_heads", false, 1, kMaxDim);
    shape.kv_heads = kv > 0 ? static_cast<int>(kv) : shape.q_heads;
    if (shape.q_heads % shape.kv_heads != 0)
      fail("num_key_value_heads", "num_key_value_heads " + std::to_string(shape.kv_heads) +
                                      " does not divide num_attention_heads " + std::to_string(shape.q_heads));
    info.dim = static_cast<int>(integer(*cfg, "hidden_size", false, 1, kMaxDim));
    const std::int64_t head_dim = integer(*cfg, "head_dim", false, 1, kMaxDim);
    if (head_dim > 0) {
      shape.head_dim = static_cast<int>(head_dim);
    } else {
      if (info.dim == 0) fail("hidden_size", "missing hidden_size (needed for head_dim, which the file does not give)");
      if (info.dim % shape.q_heads != 0)
        fail("hidden_size", "hidden_size " + std::to_string(info.dim) + " is not a multiple of num_attention_heads " +
                                std::to_string(shape.q_heads) + ", so head_dim is not hidden_size / heads; give head_dim");
      shape.head_dim = info.dim / shape.q_heads;
    }
    if (shape.head_dim % 2 != 0)
      fail(head_dim > 0 ? "head_dim" : "hidden_size",
           "head_dim " + std::to_string(shape.head_dim) + " is odd; RoPE rotates channels in pairs");
    shape.rope_theta = rope_theta(*cfg);
    info.context = integer(*cfg, "max_position_embeddings", false, 1, std::int64_t{1} << 40);
    info.hidden = static_cast<int>(integer(*cfg, "intermediate_size", false, 1, kMaxDim));
    info.vocab = static_cast<int>(integer(*root_for("vocab_size", *cfg), "vocab_size", false, 1, std::int64_t{1} << 30));
    shape.cache_dtype = dtype(*cfg);
    shape.name = name();
    return info;
  }

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    const std::string path = prefix_ + key;
    const auto it = offsets_.find(path);
    const SourceLocation loc = it != offsets_.end() ? location_at(file_, text_, it->second) : SourceLocation{file_, 1, 1};
    throw Error(loc, path, message);
  }

  // vocab_size sometimes sits at the top level of a multimodal config only.
  const json* root_for(const char* key, const json& cfg) const { return cfg.contains(key) ? &cfg : &root_; }

  // 0 when absent (or null) and not required.
  std::int64_t integer(const json& cfg, const char* key, bool required, std::int64_t lo, std::int64_t hi) const {
    const auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) {
      if (required) fail(key, std::string("missing required key \"") + key + "\"");
      return 0;
    }
    if (!it->is_number_integer())
      fail(key, std::string("expected an integer for \"") + key + "\", got " + type_text(*it));
    const bool is_unsigned = it->is_number_unsigned();
    const std::int64_t v = is_unsigned ? static_cast<std::int64_t>(std::min<std::uint64_t>(it->get<std::uint64_t>(), INT64_MAX))
                                       : it->get<std::int64_t>();
    if (v < lo || v > hi)
      fail(key, std::string("\"") + key + "\" must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                    ", got " + std::to_string(v));
    return v;
  }

  double rope_theta(const json& cfg) const {
    const json* holder = &cfg;
    std::string key = "rope_theta";
    // Newer transformers move it into rope_parameters.
    if (!cfg.contains("rope_theta") && cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object() &&
        cfg["rope_parameters"].contains("rope_theta")) {
      holder = &cfg["rope_parameters"];
      key = "rope_parameters.rope_theta";
    }
    const auto it = holder->find("rope_theta");
    if (it == holder->end() || it->is_null()) return 10000.0;
    if (!it->is_number()) fail(key, "expected a number for \"rope_theta\", got " + type_text(*it));
    const double theta = it->get<double>();
    if (!(theta > 0)) fail(key, "\"rope_theta\" must be positive");
    return theta;
  }

  ir::DType dtype(const json& cfg) const {
    const char* key = cfg.contains("torch_dtype") ? "torch_dtype" : "dtype";
    const auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) return ir::DType::F16;
    if (!it->is_string()) fail(key, std::string("expected a string for \"") + key + "\", got " + type_text(*it));
    const std::string s = it->get<std::string>();
    if (s == "bfloat16") return ir::DType::BF16;
    if (s == "float16" || s == "half") return ir::DType::F16;
    if (s == "float32" || s == "float") return ir::DType::F32;
    fail(key, "unknown dtype \"" + s + "\" (expected bfloat16, float16 or float32)");
  }

  std::string name() const {
    if (auto it = root_.find("_name_or_path"); it != root_.end() && it->is_string() && !it->get<std::string>().empty())
      return it->get<std::string>();
    // Checkpoints live in a folder named after the model: .../Llama-3.1-8B/config.json.
    const fs::path dir = fs::path(file_).parent_path().filename();
    return dir.empty() || dir == "." || dir == ".." ? fs::path(file_).stem().string() : dir.string();
  }

  static std::string type_text(const json& v) {
    if (v.is_number_float()) return "the number " + v.dump();
    return std::string(v.type_name()) + " " + v.dump().substr(0, 40);
  }

  std::string file_;
  std::string text_;
  json root_;
  std::map<std::string, std::size_t> offsets_;
  std::string prefix_;
};

}  // namespace

ModelFileInfo read_hf_config(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(SourceLocation{path, 0, 0}, "", "config file not found: '" + path + "'");
  // Real config.json files are a few KiB; a huge file is not one.
  if (fs::file_size(path, ec) > (std::uintmax_t{64} << 20))
    throw Error(SourceLocation{path, 0, 0}, "", "file is larger than 64 MiB; not a config.json");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot read config file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return ConfigReader(path, text.str()).read();
}

}  // namespace kvc::frontend
