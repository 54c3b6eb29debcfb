#pragma once
// Typed, located reads from a parsed YAML spec. Every read checks the YAML kind
// and the value's range and throws kvc::Error at the offending node (file,
// 1-based line and column, field path); every successful read records where the
// field was written, so later stages can point back at it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "support/diagnostics.h"

namespace kvc::frontend::yaml {

class Reader;

// One YAML mapping of the spec, checked for unknown and duplicate keys.
class Map {
 public:
  const std::string& path() const { return path_; }
  // Where the mapping was introduced (its key, or the document start).
  const SourceLocation& location() const { return location_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // The value node and the key's location, or nullptr when the key is absent.
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
  };
  const Entry* find(std::string_view key) const;
  std::string child(std::string_view key) const { return path_.empty() ? std::string(key) : path_ + "." + std::string(key); }

 private:
  friend class Reader;
  std::string path_;
  SourceLocation location_;
  std::vector<Entry> entries_;
};

class Reader {
 public:
  Reader(std::string file, std::map<std::string, SourceLocation>* locations)
      : file_(std::move(file)), locations_(locations) {}

  const std::string& file() const { return file_; }
  SourceLocation at(const YAML::Mark& mark) const;
  SourceLocation at(const YAML::Node& node) const { return at(node.Mark()); }
  [[noreturn]] void fail(const SourceLocation& loc, const std::string& field, const std::string& message) const;

  // `node` as a mapping whose keys must all be in `known`; `path` names it in
  // messages and `where` is where it was introduced.
  Map map(const YAML::Node& node, const std::string& path, const SourceLocation& where,
          const std::vector<std::string>& known) const;
  // The sub-mapping at `key`, if present.
  std::optional<Map> section(const Map& parent, std::string_view key, const std::vector<std::string>& known) const;
  // Fails with "missing required field" at the parent mapping.
  [[noreturn]] void missing(const Map& parent, std::string_view key, const std::string& hint) const;

  // Leaf reads: nullopt when the key is absent. Ranges are inclusive.
  std::optional<std::int64_t> integer(const Map& m, std::string_view key, std::int64_t lo, std::int64_t hi) const;
  std::optional<double> number(const Map& m, std::string_view key) const;
  std::optional<bool> boolean(const Map& m, std::string_view key) const;
  std::optional<std::string> string(const Map& m, std::string_view key) const;
  // A string that must be one of `allowed` (suggesting the closest on a typo).
  std::optional<std::string> choice(const Map& m, std::string_view key, const std::vector<std::string>& allowed) const;
  // A sequence of strings (flow or block).
  std::optional<std::vector<std::pair<std::string, SourceLocation>>> strings(const Map& m, std::string_view key) const;

  // Records where `field` was written.
  void record(const std::string& field, const SourceLocation& loc) const;
  // Where a present key's value is.
  SourceLocation value_location(const Map& m, std::string_view key) const;
  SourceLocation key_location(const Map& m, std::string_view key) const;

 private:
  const Map::Entry& entry(const Map& m, std::string_view key) const;
  // The scalar text of a present key, failing unless it is a plain or quoted scalar.
  std::string scalar(const Map& m, std::string_view key, const char* expected) const;

  std::string file_;
  std::map<std::string, SourceLocation>* locations_;
};

// "a mapping", "a list", "a scalar", "nothing" - for messages.
const char* describe(const YAML::Node& node);
// True when the scalar was written in quotes (so `"32"` is a string, not a number).
bool is_quoted(const YAML::Node& node);

}  // namespace kvc::frontend::yaml
