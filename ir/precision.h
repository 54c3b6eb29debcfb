#pragma once
// Precision pairs: the names a spec, a pass argument and a report give to a layer's
// key format and value format, the one parser of those names, and the IR formats
// (ir::QuantFormat) they stand for.
//
//   pair      := "fp16" | "K" side "V" side            fp16 is K16V16
//   side      := bits [quantizer] ["r"] ["g" group]
//   bits      := 16 | 8 | 4 | 3 | 2                     16 takes nothing after it
//   quantizer := (none)  KIVI: keys per channel in groups of search.precision.group
//                        tokens, values per token in groups of min(group, head_dim)
//                        channels; fp16 scale and min per group
//              | "t"     per token: one fp16 scale per token and head, symmetric codes
//              | "a"     per token: fp16 scale and min per token and head
//              | "c"     per token: the Lloyd-Max codebook of a unit Gaussian (2, 3 or 4
//                        bits), one fp16 scale (the RMS) per token and head
//   "r"       the vectors are rotated first (randomized Hadamard, seeded)
//   "g" group t, a, c only: sub-groups of `group` channels, each with its own
//             scale (and min); without it one group spans the whole head
//
// Key format and value format are independent choices: K4V2cr is KIVI keys with
// rotated codebook values, K4trV4 rotated per-token keys with KIVI values, K2tV2
// unrotated per-token keys (the baseline rotation improves on).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ir/plan.h"

namespace kvc::ir {

enum class Quantizer : std::uint8_t { Kivi, Token, TokenMinMax, Codebook };

// One side (key or value) of a precision pair.
struct SideFormat {
  int bits = 16;
  Quantizer quantizer = Quantizer::Kivi;
  bool rotated = false;
  int group = 0;  // t, a, c: channels per scale; 0 = the whole head
  std::string name() const;  // "4", "4tr", "3crg16", "16"
  auto operator<=>(const SideFormat&) const = default;
};

struct PrecisionPair {
  SideFormat key;
  SideFormat value;
  std::string name() const;  // "fp16", "K4V2", "K4V2cr"
  bool compressed() const { return key.bits < 16 || value.bits < 16; }
  auto operator<=>(const PrecisionPair&) const = default;
};

// KIVI's pair K<key_bits>V<value_bits>.
PrecisionPair kivi_pair(int key_bits, int value_bits);

// The one parser of the grammar above. nullopt when `text` is not a pair; `problem`
// (when given) then says what is wrong in words fit for an error message.
std::optional<PrecisionPair> parse_precision_pair(std::string_view text, std::string* problem = nullptr);
std::optional<SideFormat> parse_side_format(std::string_view text, std::string* problem = nullptr);

// The IR format of one side for heads of `head_dim` channels. `kivi_group` is the
// spec's group (KIVI keys: tokens per channel group; KIVI values: channels, at
// most head_dim; fp16 sides keep KIVI's axis and group, which code nothing);
// `seed` seeds a rotation's sign flips.
QuantFormat key_format(const SideFormat& side, int kivi_group, int head_dim, std::uint32_t seed);
QuantFormat value_format(const SideFormat& side, int kivi_group, int head_dim, std::uint32_t seed);

// Why a side cannot be stored for heads of `head_dim` channels ("" when it can):
// a sub-group that does not divide the head, or codes that are not whole bytes.
std::string side_problem(const SideFormat& side, int head_dim);

// The side a key / value format of a plan is written as (the inverse of
// key_format / value_format for the formats they make; a value grouped per token
// with a min is named KIVI whatever its group).
SideFormat key_side(const QuantFormat& f, int head_dim);
SideFormat value_side(const QuantFormat& f, int head_dim);

// Format families: a side without its bits ("kivi" for KIVI's, else the letters:
// "t", "tr", "cr", "a", "r", "crg16"). family_side(family, bits) is that family at
// `bits`; nullopt when the family is not one or has no such width (an 8-bit codebook).
std::string family_name(const SideFormat& side);
std::optional<SideFormat> family_side(std::string_view family, int bits, std::string* problem = nullptr);

// A side as one number, for tables of floats (calibration stats): bits + 32 *
// quantizer + 128 * rotated + 256 * group. KIVI sides are their bits, so tables
// written before there were other formats read the same.
int side_code(const SideFormat& side);
std::optional<SideFormat> side_from_code(int code);

}  // namespace kvc::ir
