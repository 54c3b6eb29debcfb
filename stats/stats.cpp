#include "stats/stats.h"

#include <sstream>

#include "support/diagnostics.h"

namespace kvc::calibration {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
  s << "]";
  return s.str();
}

std::string model_text(const ir::ModelShape& m) {
  std::ostringstream s;
  s << "layers=" << m.layers << " q_heads=" << m.q_heads << " kv_heads=" << m.kv_heads << " head_dim=" << m.head_dim;
  return s.str();
}

}  // namespace

const StatsTensor& CalibrationStats::tensor(const std::string& name, const std::vector<std::int64_t>& shape) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error({}, name, "calibration stats have no tensor '" + name + "'");
  if (it->second.shape != shape)
    throw Error({}, name,
                "calibration stats tensor '" + name + "' has shape " + shape_text(it->second.shape) + ", expected " +
                    shape_text(shape));
  return it->second;
}

std::vector<ir::SideFormat> kivi_formats(const std::vector<int>& bits) {
  std::vector<ir::SideFormat> out;
  for (int b : bits) out.push_back(ir::SideFormat{b});
  return out;
}

std::map<std::string, std::vector<std::int64_t>> expected_tensor_shapes(const StatsMeta& m) {
  const std::int64_t L = m.model.layers, H = m.model.kv_heads, d = m.model.head_dim, D = H * d;
  const std::int64_t N = m.sequences, FK = static_cast<std::int64_t>(m.key_formats.size());
  const std::int64_t FV = static_cast<std::int64_t>(m.value_formats.size());
  const std::int64_t R = static_cast<std::int64_t>(m.keep_ratios.size()), F = m.prefix_points;
  std::map<std::string, std::vector<std::int64_t>> s;
  for (const char* n : {"key_channel_min", "key_channel_max", "key_channel_mean", "key_channel_var"}) s[n] = {L, H, d};
  for (const char* n : {"key_outlier_ratio", "value_outlier_ratio", "value_token_range_mean", "value_token_range_p50",
                        "value_token_range_p99", "value_token_range_max", "value_token_absmax_mean",
                        "value_token_absmax_max", "cake_entropy_mean", "cake_variance_mean"})
    s[n] = {L, H};
  s["quant_output_error"] = {N, L, H, FK, FV};
  s["quant_output_error_mean"] = {L, H, FK, FV};
  s["quant_output_error_p90"] = {L, H, FK, FV};
  s["quant_key_error"] = {L, H, FK};
  s["quant_value_error"] = {L, H, FV};
  s["retention_output_error"] = {N, L, H, 3, R};
  s["retention_output_error_mean"] = {L, H, 3, R};
  s["retention_output_error_p90"] = {L, H, 3, R};
  s["prefix_curve"] = {N, L, F};
  s["prefix_curve_mean"] = {L, F};
  s["cake_entropy"] = {N, L, H};
  s["cake_variance"] = {N, L, H};
  for (std::int64_t g = 1; g <= m.max_group && g <= L; ++g) {
    s["key_spectrum_g" + std::to_string(g)] = {L - g + 1, g * D};
    s["key_rank_error_g" + std::to_string(g)] = {L - g + 1, g * D + 1};
  }
  return s;
}

void validate_stats(const CalibrationStats& stats, const std::string& origin) {
  const StatsMeta& m = stats.meta;
  auto bad = [&](const std::string& field, const std::string& why) {
    throw Error({origin, 0, 0}, field, "invalid calibration stats: " + why);
  };
  if (m.model.layers <= 0 || m.model.q_heads <= 0 || m.model.kv_heads <= 0 || m.model.head_dim <= 0)
    bad("model", "model shape must be positive (" + model_text(m.model) + ")");
  if (m.model.q_heads % m.model.kv_heads != 0) bad("model", "q_heads is not a multiple of kv_heads");
  if (m.sequences <= 0 || m.length <= 0 || m.prompt <= 0 || m.decode <= 0 || m.prompt + m.decode != m.length)
    bad("calibration", "need sequences > 0 and length = prompt + decode with both positive");
  if (m.key_formats.empty() || m.value_formats.empty() || m.keep_ratios.empty() || m.prefix_points <= 0 ||
      m.max_group <= 0)
    bad("calibration", "empty key_formats, value_formats, keep_ratios, prefix_points or max_group");
  for (const auto* formats : {&m.key_formats, &m.value_formats})
    for (const ir::SideFormat& f : *formats)
      if (f.bits >= 16) bad("calibration", "a measured format is fp16 (" + f.name() + "); formats are quantized");
  // Bound the sizes before anything multiplies them, so a corrupt header cannot ask
  // for an absurd allocation in expected_tensor_shapes' callers.
  if (m.model.layers > 4096 || m.model.kv_heads > 4096 || m.model.head_dim > 65536 || m.key_formats.size() > 256 ||
      m.value_formats.size() > 256 ||
      m.keep_ratios.size() > 1024 || m.prefix_points > 65536 || m.max_group > 64 || m.sequences > (1 << 24))
    bad("calibration", "sizes out of range");
  const auto expected = expected_tensor_shapes(m);
  for (const auto& [name, shape] : expected) {
    auto it = stats.tensors.find(name);
    if (it == stats.tensors.end()) bad(name, "missing tensor '" + name + "'");
    if (it->second.shape != shape)
      bad(name, "tensor '" + name + "' has shape " + shape_text(it->second.shape) + ", expected " + shape_text(shape));
  }
  for (const auto& [name, t] : stats.tensors) {
    std::int64_t n = 1;
    for (std::int64_t e : t.shape) n *= e;
    if (static_cast<std::int64_t>(t.data.size()) != n) bad(name, "tensor '" + name + "' data does not match its shape");
  }
}

void check_stats_match_model(const CalibrationStats& stats, const ir::ModelShape& model, const std::string& origin) {
  const ir::ModelShape& s = stats.meta.model;
  if (s.layers == model.layers && s.q_heads == model.q_heads && s.kv_heads == model.kv_heads &&
      s.head_dim == model.head_dim)
    return;
  throw Error({origin, 0, 0}, "model",
              "calibration stats were measured on a model with " + model_text(s) + " ('" + s.name +
                  "'), but this model has " + model_text(model) + " ('" + model.name + "')");
}

}  // namespace kvc::calibration
