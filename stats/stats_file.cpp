#include "stats/stats_file.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/diagnostics.h"

namespace kvc::calibration {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'C', 'S', 'T', 'A', 'T', 'S'};
constexpr const char* kFormatName = "kvc-calibration-stats";

using nlohmann::json;

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_u64(std::string_view in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}

std::vector<std::string> format_names(const std::vector<ir::SideFormat>& formats) {
  std::vector<std::string> out;
  for (const auto& f : formats) out.push_back(f.name());
  return out;
}

json meta_to_json(const StatsMeta& m) {
  return json{{"source", m.source},
              {"sequences", m.sequences},
              {"length", m.length},
              {"prompt", m.prompt},
              {"decode", m.decode},
              {"seed", m.seed},
              {"key_formats", format_names(m.key_formats)},
              {"value_formats", format_names(m.value_formats)},
              {"quant_token_group", m.quant_token_group},
              {"quant_channel_group", m.quant_channel_group},
              {"rotation_seed", m.rotation_seed},
              {"keep_ratios", m.keep_ratios},
              {"sink", m.sink},
              {"snapkv_window", m.snapkv_window},
              {"snapkv_pool", m.snapkv_pool},
              {"cake_window", m.cake_window},
              {"prefix_points", m.prefix_points},
              {"max_group", m.max_group}};
}

}  // namespace

std::string serialize_stats(const CalibrationStats& stats) {
  validate_stats(stats, "<stats being written>");
  const StatsMeta& m = stats.meta;
  json header;
  header["format"] = kFormatName;
  header["version"] = kStatsFormatVersion;
  header["model"] = json{{"name", m.model.name},           {"layers", m.model.layers},
                         {"q_heads", m.model.q_heads},     {"kv_heads", m.model.kv_heads},
                         {"head_dim", m.model.head_dim},   {"rope_theta", m.model.rope_theta}};
  header["calibration"] = meta_to_json(m);
  json tensors = json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, t] : stats.tensors) {
    const std::uint64_t bytes = t.data.size() * 4;
    tensors[name] = json{{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  header["tensors"] = tensors;
  const std::string header_text = header.dump();

  std::string out(kMagic, sizeof kMagic);
  put_u64(out, header_text.size());
  out += header_text;
  out.reserve(out.size() + offset);
  for (const auto& [name, t] : stats.tensors)  // std::map: the same order as the offsets above
    for (float f : t.data) {
      const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
    }
  return out;
}

CalibrationStats parse_stats(std::string_view bytes, const std::string& origin) {
  auto bad = [&](const std::string& field, const std::string& why) -> Error {
    return Error({origin, 0, 0}, field, "not a valid kvc calibration stats file: " + why);
  };
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw bad("", "it does not start with the magic \"KVCSTATS\" (is it a stats file written by kvc calibrate?)");
  const std::uint64_t header_len = get_u64(bytes.substr(8, 8));
  if (header_len > bytes.size() - 16)
    throw bad("", "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                      std::to_string(bytes.size()) + " bytes): truncated?");
  const std::string_view header_text = bytes.substr(16, header_len);
  const std::string_view data = bytes.substr(16 + header_len);

  CalibrationStats stats;
  try {
    const json h = json::parse(header_text);
    if (!h.is_object() || h.value("format", "") != kFormatName)
      throw bad("format", std::string("header \"format\" is not \"") + kFormatName + "\"");
    if (!h.contains("version") || !h["version"].is_number_integer())
      throw bad("version", "header has no integer \"version\"");
    if (h["version"].get<int>() != kStatsFormatVersion)
      throw bad("version", "format version " + h["version"].dump() + " is not supported (this kvc reads version " +
                               std::to_string(kStatsFormatVersion) + "); re-run kvc calibrate");
    const json& mj = h.at("model");
    StatsMeta& m = stats.meta;
    m.model.name = mj.at("name").get<std::string>();
    m.model.layers = mj.at("layers").get<int>();
    m.model.q_heads = mj.at("q_heads").get<int>();
    m.model.kv_heads = mj.at("kv_heads").get<int>();
    m.model.head_dim = mj.at("head_dim").get<int>();
    m.model.rope_theta = mj.at("rope_theta").get<double>();
    const json& c = h.at("calibration");
    m.source = c.at("source").get<std::string>();
    m.sequences = c.at("sequences").get<int>();
    m.length = c.at("length").get<int>();
    m.prompt = c.at("prompt").get<int>();
    m.decode = c.at("decode").get<int>();
    m.seed = c.at("seed").get<std::uint64_t>();
    for (auto [key, formats] : {std::pair{"key_formats", &m.key_formats}, {"value_formats", &m.value_formats}})
      for (const std::string& name : c.at(key).get<std::vector<std::string>>()) {
        std::string problem;
        const auto side = ir::parse_side_format(name, &problem);
        if (!side) throw bad(key, "\"" + std::string(key) + "\" holds " + problem);
        formats->push_back(*side);
      }
    m.quant_token_group = c.at("quant_token_group").get<int>();
    m.quant_channel_group = c.at("quant_channel_group").get<int>();
    m.rotation_seed = c.at("rotation_seed").get<std::uint32_t>();
    m.keep_ratios = c.at("keep_ratios").get<std::vector<double>>();
    m.sink = c.at("sink").get<int>();
    m.snapkv_window = c.at("snapkv_window").get<int>();
    m.snapkv_pool = c.at("snapkv_pool").get<int>();
    m.cake_window = c.at("cake_window").get<int>();
    m.prefix_points = c.at("prefix_points").get<int>();
    m.max_group = c.at("max_group").get<int>();

    const json& tj = h.at("tensors");
    if (!tj.is_object()) throw bad("tensors", "\"tensors\" is not an object");
    // Tensors must tile the data section: sort by begin and walk it.
    std::map<std::uint64_t, std::pair<std::string, std::uint64_t>> by_begin;
    for (const auto& [name, t] : tj.items()) {
      if (t.value("dtype", "") != "F32") throw bad(name, "tensor '" + name + "' is not F32");
      StatsTensor tensor;
      tensor.shape = t.at("shape").get<std::vector<std::int64_t>>();
      std::uint64_t n = 1;
      for (std::int64_t e : tensor.shape) {
        if (e < 0 || (e > 0 && n > (std::numeric_limits<std::uint64_t>::max() / 8) / static_cast<std::uint64_t>(e)))
          throw bad(name, "tensor '" + name + "' has an invalid shape");
        n *= static_cast<std::uint64_t>(e);
      }
      const auto off = t.at("data_offsets").get<std::vector<std::uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] - off[0] != n * 4)
        throw bad(name, "tensor '" + name + "' data_offsets do not match its shape");
      if (off[1] > data.size())
        throw bad(name, "tensor '" + name + "' ends at byte " + std::to_string(off[1]) + " of a " +
                            std::to_string(data.size()) + "-byte data section: truncated?");
      if (n != 0 && !by_begin.emplace(off[0], std::pair{name, off[1]}).second) throw bad(name, "tensors overlap");
      tensor.data.resize(n);
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint32_t u = 0;
        for (int b = 0; b < 4; ++b)
          u |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[off[0] + 4 * i + b])) << (8 * b);
        tensor.data[i] = std::bit_cast<float>(u);
      }
      stats.tensors.emplace(name, std::move(tensor));
    }
    std::uint64_t pos = 0;
    for (const auto& [begin, rest] : by_begin) {
      if (begin != pos) throw bad(rest.first, "tensor data leaves a gap or overlaps at byte " + std::to_string(pos));
      pos = rest.second;
    }
    if (pos != data.size())
      throw bad("", "the data section has " + std::to_string(data.size() - pos) + " bytes no tensor describes");
  } catch (const json::exception& e) {
    throw bad("", std::string("bad JSON header: ") + e.what());
  }
  validate_stats(stats, origin);
  return stats;
}

void write_stats_file(const std::string& path, const CalibrationStats& stats) {
  const std::string bytes = serialize_stats(stats);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error({path, 0, 0}, "", "cannot open the stats file for writing");
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) throw Error({path, 0, 0}, "", "cannot write the stats file");
}

CalibrationStats read_stats_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error({path, 0, 0}, "", "cannot open the calibration stats file");
  std::ostringstream s;
  s << f.rdbuf();
  return parse_stats(s.str(), path);
}

}  // namespace kvc::calibration
