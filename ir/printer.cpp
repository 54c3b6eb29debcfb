#include "ir/printer.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "support/diagnostics.h"

namespace kvc::ir {

namespace {

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0 if there is none.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = byte(k);
    return i + k < s.size() && b >= lo && b <= hi;
  };
  const unsigned b0 = byte(0);
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b0 == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// An enum's text name; a value with no name cannot be printed faithfully.
template <typename Enum>
std::string name_of(Enum e, const char* field) {
  const std::string name = to_string(e);
  if (name == "?") {
    throw Error({}, field, "cannot print enum value " + std::to_string(static_cast<int>(e)) + ": it has no name");
  }
  return name;
}

// int4/per-channel/g32 for KIVI's min/scale codes; other schemes add /<scheme>, and
// a rotation /hadamard(seed=<n>), so every plan of KIVI formats prints as it always has.
std::string format_quant(const QuantFormat& f, const QuantFormat& defaults, const std::string& field) {
  const bool plain = f.scheme == QuantScheme::MinMax && f.rotation == Rotation::None && f.seed == 0;
  if (f.bits == 16 && f.axis == defaults.axis && f.group == defaults.group && plain) return "fp16";
  std::string out = f.bits == 16 ? "fp16" : "int" + std::to_string(f.bits);
  out += "/" + name_of(f.axis, (field + ".axis").c_str()) + "/g" + std::to_string(f.group);
  if (plain) return out;
  out += "/" + name_of(f.scheme, (field + ".scheme").c_str());
  if (f.rotation != Rotation::None || f.seed != 0)
    out += "/" + name_of(f.rotation, (field + ".rotation").c_str()) + "(seed=" + std::to_string(f.seed) + ")";
  return out;
}

bool uses_sink(RetentionPolicy p) { return p == RetentionPolicy::StreamingLLM || p == RetentionPolicy::H2O; }
bool uses_window(RetentionPolicy p) { return p != RetentionPolicy::Full; }

std::string format_retention(const Retention& r) {
  const RetentionPolicy p = r.policy;
  std::string params;
  const auto add = [&](const char* key, const std::string& value) {
    if (!params.empty()) params += ",";
    params += key;
    params += "=";
    params += value;
  };
  // -0.0 compares equal to 0 but is kept so the module's bits survive the round trip.
  const bool gamma_set = r.gamma != 0.0 || std::signbit(r.gamma) || std::isnan(r.gamma);
  if (p != RetentionPolicy::Full || r.budget != 0) add("budget", std::to_string(r.budget));
  if (uses_sink(p) || r.sink != 0) add("sink", std::to_string(r.sink));
  if (uses_window(p) || r.window != 0) add("window", std::to_string(r.window));
  if (p == RetentionPolicy::SnapKV || p == RetentionPolicy::CAKE || r.pool != 0) add("pool", std::to_string(r.pool));
  if (p == RetentionPolicy::CAKE || gamma_set) add("gamma", format_exact_double(r.gamma));
  std::string out = name_of(p, "keep");
  if (!params.empty()) out += "(" + params + ")";
  return out;
}

std::string format_lowrank(const LowRank& lr) {
  if (lr == LowRank{}) return "none";
  std::string out = std::to_string(lr.rank) + "/" + name_of(lr.sharing, "rank.sharing");
  std::string params;
  if (lr.sharing == BasisSharing::CrossLayer || lr.basis_group != -1) params += "group=" + std::to_string(lr.basis_group);
  if (lr.sharing != BasisSharing::None || lr.source != BasisSource::Prefill) {
    if (!params.empty()) params += ",";
    params += "source=" + name_of(lr.source, "rank.source");
  }
  if (!params.empty()) out += "(" + params + ")";
  return out;
}

}  // namespace

std::string format_exact_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  // Shortest round-trip digits come from to_chars in scientific form ("-1.25e+05");
  // they are re-laid out in fixed notation when the exponent is moderate.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  const std::size_t e_pos = sci.find('e');
  const bool negative = sci.front() == '-';
  std::string digits;
  for (char c : sci.substr(negative ? 1 : 0, e_pos - (negative ? 1 : 0))) {
    if (c != '.') digits += c;
  }
  const int exponent = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());
  if (exponent < -6 || exponent > 20) return std::string(sci);
  std::string out = negative ? "-" : "";
  if (exponent < 0) {
    out += "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  } else {
    const std::size_t int_digits = static_cast<std::size_t>(exponent) + 1;
    if (digits.size() <= int_digits) {
      out += digits + std::string(int_digits - digits.size(), '0');
    } else {
      out += digits.substr(0, int_digits) + "." + digits.substr(int_digits);
    }
  }
  return out;
}

std::string quote_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(s, i);
      if (n > 0) {
        out.append(s.substr(i, n));
        i += n;
        continue;
      }
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7F) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02X", c);
          out += hex;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += "\"";
  return out;
}

std::string print_layer(const LayerPlan& p) {
  const LayerPlan defaults;
  std::string out = "layer " + std::to_string(p.index) + ":";
  out += " k=" + format_quant(p.key, defaults.key, "k");
  out += " v=" + format_quant(p.value, defaults.value, "v");
  out += " residual=" + std::to_string(p.residual);
  out += " keep=" + format_retention(p.retention);
  out += " rank=" + format_lowrank(p.lowrank);
  return out;
}

std::string print_module(const Module& m) {
  const ModelShape& s = m.model;
  std::string out = "; kvc plan v1\n";
  out += "module " + quote_string(s.name) + " {\n";
  out += "  model    layers=" + std::to_string(s.layers) + " q_heads=" + std::to_string(s.q_heads) +
         " kv_heads=" + std::to_string(s.kv_heads) + " head_dim=" + std::to_string(s.head_dim) +
         " rope_theta=" + format_exact_double(s.rope_theta) + " cache=" + name_of(s.cache_dtype, "model.cache") + "\n";
  out += "  workload context=" + std::to_string(m.workload.context) + " batch=" + std::to_string(m.workload.batch) +
         " generate=" + std::to_string(m.workload.generate) + "\n";
  out += "  budget   bytes=" + std::to_string(m.budget_bytes) + "\n";
  out += "}\n";
  for (const LayerPlan& p : m.layers) out += print_layer(p) + "\n";
  return out;
}

}  // namespace kvc::ir
