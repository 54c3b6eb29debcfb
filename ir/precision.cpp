#include "ir/precision.h"

#include <algorithm>
#include <charconv>

namespace kvc::ir {

namespace {

constexpr int kGroups[] = {8, 16, 32, 64, 128};

char quantizer_letter(Quantizer q) {
  switch (q) {
    case Quantizer::Kivi: return 0;
    case Quantizer::Token: return 't';
    case Quantizer::TokenMinMax: return 'a';
    case Quantizer::Codebook: return 'c';
  }
  return '?';
}

bool set_problem(std::string* problem, std::string text) {
  if (problem) *problem = std::move(text);
  return false;
}

// Reads a leading unsigned integer off `s`; nullopt when there are no digits.
std::optional<int> take_number(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && n < 6 && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0) return std::nullopt;
  int value = 0;
  std::from_chars(s.data(), s.data() + n, value);
  s.remove_prefix(n);
  return value;
}

}  // namespace

std::string SideFormat::name() const {
  std::string s = std::to_string(bits);
  if (const char c = quantizer_letter(quantizer)) s += c;
  if (rotated) s += 'r';
  if (group > 0) s += "g" + std::to_string(group);
  return s;
}

std::string PrecisionPair::name() const {
  if (!compressed() && key == SideFormat{} && value == SideFormat{}) return "fp16";
  return "K" + key.name() + "V" + value.name();
}

PrecisionPair kivi_pair(int key_bits, int value_bits) {
  PrecisionPair p;
  p.key.bits = key_bits;
  p.value.bits = value_bits;
  return p;
}

std::optional<SideFormat> parse_side_format(std::string_view text, std::string* problem) {
  const std::string shown(text);
  std::string_view s = text;
  SideFormat f;
  const auto bits = take_number(s);
  if (!bits || (*bits != 16 && *bits != 8 && *bits != 4 && *bits != 3 && *bits != 2)) {
    set_problem(problem, "'" + shown + "' does not start with bits 16, 8, 4, 3 or 2");
    return std::nullopt;
  }
  f.bits = *bits;
  if (!s.empty() && (s[0] == 't' || s[0] == 'a' || s[0] == 'c')) {
    f.quantizer = s[0] == 't' ? Quantizer::Token : s[0] == 'a' ? Quantizer::TokenMinMax : Quantizer::Codebook;
    s.remove_prefix(1);
  }
  if (!s.empty() && s[0] == 'r') {
    f.rotated = true;
    s.remove_prefix(1);
  }
  if (!s.empty() && s[0] == 'g') {
    s.remove_prefix(1);
    const auto group = take_number(s);
    if (!group || std::find(std::begin(kGroups), std::end(kGroups), *group) == std::end(kGroups)) {
      set_problem(problem, "'" + shown + "': a sub-group is g8, g16, g32, g64 or g128");
      return std::nullopt;
    }
    if (f.quantizer == Quantizer::Kivi) {
      set_problem(problem, "'" + shown + "': KIVI's group is search.precision.group; g<N> goes with t, a or c");
      return std::nullopt;
    }
    f.group = *group;
  }
  if (!s.empty()) {
    set_problem(problem, "'" + shown + "': unexpected '" + std::string(s) +
                             "' (after the bits: t, a or c, then r, then g<N>)");
    return std::nullopt;
  }
  if (f.bits == 16 && !(f == SideFormat{})) {
    set_problem(problem, "'" + shown + "': 16 bits is uncompressed fp16 and takes no quantizer or rotation");
    return std::nullopt;
  }
  if (f.quantizer == Quantizer::Codebook && f.bits == 8) {
    set_problem(problem, "'" + shown + "': the Lloyd-Max codebook has 2, 3 or 4 bits");
    return std::nullopt;
  }
  return f;
}

std::optional<PrecisionPair> parse_precision_pair(std::string_view text, std::string* problem) {
  if (text == "fp16") return PrecisionPair{};
  const std::size_t v = text.find('V');
  if (text.size() < 4 || text[0] != 'K' || v == std::string_view::npos) {
    set_problem(problem, "'" + std::string(text) + "' is not a precision pair like K8V4 or K4V2cr");
    return std::nullopt;
  }
  const auto key = parse_side_format(text.substr(1, v - 1), problem);
  if (!key) return std::nullopt;
  const auto value = parse_side_format(text.substr(v + 1), problem);
  if (!value) return std::nullopt;
  return PrecisionPair{*key, *value};
}

namespace {

QuantFormat coded(const SideFormat& side, QuantAxis axis, int group, std::uint32_t seed) {
  QuantFormat f{side.bits, axis, group};
  f.scheme = side.quantizer == Quantizer::Token      ? QuantScheme::Symmetric
             : side.quantizer == Quantizer::Codebook ? QuantScheme::LloydMax
                                                     : QuantScheme::MinMax;
  if (side.rotated) {
    f.rotation = Rotation::Hadamard;
    f.seed = seed;
  }
  return f;
}

int token_group(const SideFormat& side, int head_dim) { return side.group > 0 ? side.group : head_dim; }

}  // namespace

QuantFormat key_format(const SideFormat& side, int kivi_group, int head_dim, std::uint32_t seed) {
  if (side.quantizer == Quantizer::Kivi) return coded(side, QuantAxis::PerChannel, kivi_group, seed);
  return coded(side, QuantAxis::PerToken, token_group(side, head_dim), seed);
}

QuantFormat value_format(const SideFormat& side, int kivi_group, int head_dim, std::uint32_t seed) {
  // Heads narrower than the group: a KIVI value group is the whole head vector
  // (stories260K: 8 channels), so every token still carries its own scales.
  if (side.quantizer == Quantizer::Kivi) return coded(side, QuantAxis::PerToken, std::min(kivi_group, head_dim), seed);
  return coded(side, QuantAxis::PerToken, token_group(side, head_dim), seed);
}

std::string side_problem(const SideFormat& side, int head_dim) {
  if (side.bits >= 16 || side.quantizer == Quantizer::Kivi) return "";
  const int g = token_group(side, head_dim);
  if (head_dim % g != 0)
    return side.name() + ": sub-group " + std::to_string(g) + " does not divide head_dim " + std::to_string(head_dim);
  if (head_dim * side.bits % 8 != 0)
    return side.name() + ": " + std::to_string(head_dim) + " channels of " + std::to_string(side.bits) +
           "-bit codes are not a whole number of bytes";
  return "";
}

namespace {
SideFormat side_from(const QuantFormat& f, int head_dim, bool minmax_is_kivi) {
  SideFormat s;
  s.bits = f.bits;
  if (f.bits >= 16) return s;
  s.rotated = f.rotation == Rotation::Hadamard;
  switch (f.scheme) {
    case QuantScheme::MinMax: s.quantizer = minmax_is_kivi ? Quantizer::Kivi : Quantizer::TokenMinMax; break;
    case QuantScheme::Symmetric: s.quantizer = Quantizer::Token; break;
    case QuantScheme::LloydMax: s.quantizer = Quantizer::Codebook; break;
  }
  if (s.quantizer != Quantizer::Kivi && f.group != head_dim) s.group = f.group;
  return s;
}
}  // namespace

SideFormat key_side(const QuantFormat& f, int head_dim) {
  return side_from(f, head_dim, f.axis == QuantAxis::PerChannel);
}

SideFormat value_side(const QuantFormat& f, int head_dim) { return side_from(f, head_dim, true); }

std::string family_name(const SideFormat& side) {
  if (side.quantizer == Quantizer::Kivi && !side.rotated) return "kivi";
  return side.name().substr(std::to_string(side.bits).size());
}

std::optional<SideFormat> family_side(std::string_view family, int bits, std::string* problem) {
  if (family == "kivi") family = "";
  if (family.empty() || (family[0] >= 'a' && family[0] <= 'z'))
    return parse_side_format(std::to_string(bits) + std::string(family), problem);
  set_problem(problem, "'" + std::string(family) + "' is not a format family (kivi, or letters such as t, tr, cr)");
  return std::nullopt;
}

int side_code(const SideFormat& s) {
  return s.bits + 32 * static_cast<int>(s.quantizer) + (s.rotated ? 128 : 0) + 256 * s.group;
}

std::optional<SideFormat> side_from_code(int code) {
  if (code < 0) return std::nullopt;
  SideFormat s;
  s.bits = code % 32;
  s.quantizer = static_cast<Quantizer>((code / 32) % 4);
  s.rotated = (code / 128) % 2 != 0;
  s.group = code / 256;
  if (side_code(s) != code) return std::nullopt;
  std::string ignored;
  if (!parse_side_format(s.name(), &ignored)) return std::nullopt;
  return s;
}

}  // namespace kvc::ir
