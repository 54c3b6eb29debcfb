#pragma once
// Small text helpers shared by the frontends and the IR parser.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvc {

// Levenshtein distance, for "did you mean ...?" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, if it is close enough to be a plausible typo.
std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates);

// Parses a byte size such as "4GiB", "512 MiB", "1.5GB", "1000000" (plain bytes).
// Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal (KB, MB, GB, TB) powers
// of 1000. Returns nullopt for anything else, negative sizes, or overflow.
std::optional<std::int64_t> parse_byte_size(std::string_view text);

// "4.00 GiB"-style rendering for reports.
std::string format_bytes(std::int64_t bytes);

// The non-empty items of a `sep`-separated list ("a,,b" -> {"a", "b"}): pass
// arguments such as `cake<K4V2,tau1=2>`.
std::vector<std::string> split_list(const std::string& text, char sep = ',');

}  // namespace kvc
