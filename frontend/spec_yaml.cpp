#include "frontend/spec_yaml.h"

#include <charconv>
#include <cmath>

#include "support/text.h"

namespace kvc::frontend::yaml {

namespace {

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<double> parse_number(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || !std::isfinite(value)) return std::nullopt;
  return value;
}

// How a scalar looks in a message: quoted when the user quoted it.
std::string shown(const YAML::Node& node) {
  return is_quoted(node) ? "the string \"" + node.Scalar() + "\"" : "'" + node.Scalar() + "'";
}

}  // namespace

const char* describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    default: return "nothing";
  }
}

bool is_quoted(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "!"; }

SourceLocation Reader::at(const YAML::Mark& mark) const {
  if (mark.is_null() || mark.line < 0) return SourceLocation{file_, 0, 0};
  return SourceLocation{file_, mark.line + 1, mark.column + 1};
}

void Reader::fail(const SourceLocation& loc, const std::string& field, const std::string& message) const {
  throw Error(loc, field, message);
}

void Reader::record(const std::string& field, const SourceLocation& loc) const {
  if (locations_) (*locations_)[field] = loc;
}

const Map::Entry* Map::find(std::string_view key) const {
  for (const auto& e : entries_)
    if (e.key == key) return &e;
  return nullptr;
}

Map Reader::map(const YAML::Node& node, const std::string& path, const SourceLocation& where,
                const std::vector<std::string>& known) const {
  Map m;
  m.path_ = path;
  m.location_ = where;
  // `section:` with nothing after it reads as an empty mapping: every field keeps its default.
  if (!node.IsDefined() || node.IsNull()) return m;
  if (!node.IsMap()) {
    const SourceLocation node_at = at(node).line > 0 ? at(node) : where;
    const std::string what = path.empty() ? "the spec" : "'" + path + "'";
    fail(node_at, path, "expected " + what + " to be a mapping of fields (key: value lines), got " + describe(node));
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    // Copies: the iterator's pair is a temporary, and Nodes are cheap handles.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    const SourceLocation key_at = at(key).line > 0 ? at(key) : where;  // a null key has no mark
    if (!key.IsScalar()) fail(key_at, path, std::string("a key must be a plain name, got ") + describe(key));
    const std::string name = key.Scalar();
    const std::string field = m.child(name);
    if (const Map::Entry* first = m.find(name)) {
      fail(key_at, field,
           "duplicate key '" + name + "' (first written at line " + std::to_string(at(first->key_node).line) + ")");
    }
    bool is_known = false;
    for (const auto& k : known) is_known = is_known || k == name;
    if (!is_known) {
      std::string msg = "unknown key '" + name + "'";
      if (auto near = closest_match(name, known)) msg += "; did you mean '" + *near + "'?";
      msg += " (" + (path.empty() ? std::string("top-level") : "'" + path + "'") + " keys: " + join(known) + ")";
      fail(key_at, field, msg);
    }
    m.entries_.push_back(Map::Entry{name, key, value});
  }
  return m;
}

std::optional<Map> Reader::section(const Map& parent, std::string_view key, const std::vector<std::string>& known) const {
  const Map::Entry* e = parent.find(key);
  if (!e) return std::nullopt;
  const std::string path = parent.child(key);
  record(path, at(e->key_node));
  return map(e->value, path, at(e->key_node), known);
}

void Reader::missing(const Map& parent, std::string_view key, const std::string& hint) const {
  const std::string field = parent.child(key);
  std::string msg = "missing required field '" + field + "'";
  if (!hint.empty()) msg += " (" + hint + ")";
  fail(parent.location(), field, msg);
}

const Map::Entry& Reader::entry(const Map& m, std::string_view key) const { return *m.find(key); }

SourceLocation Reader::value_location(const Map& m, std::string_view key) const {
  const Map::Entry& e = entry(m, key);
  const SourceLocation loc = at(e.value);
  // A key with nothing after it has no mark of its own: point at the key.
  return loc.line > 0 ? loc : at(e.key_node);
}

SourceLocation Reader::key_location(const Map& m, std::string_view key) const { return at(entry(m, key).key_node); }

std::string Reader::scalar(const Map& m, std::string_view key, const char* expected) const {
  const Map::Entry& e = entry(m, key);
  if (!e.value.IsScalar()) {
    fail(value_location(m, key), m.child(key), std::string("expected ") + expected + ", got " + describe(e.value));
  }
  return e.value.Scalar();
}

std::optional<std::int64_t> Reader::integer(const Map& m, std::string_view key, std::int64_t lo, std::int64_t hi) const {
  if (!m.has(key)) return std::nullopt;
  const std::string field = m.child(key);
  const SourceLocation loc = value_location(m, key);
  const std::string text = scalar(m, key, "an integer");
  const YAML::Node& node = entry(m, key).value;
  const auto value = is_quoted(node) ? std::nullopt : parse_integer(text);
  if (!value) {
    std::string msg = "expected an integer, got " + shown(node);
    if (!is_quoted(node) && parse_number(text)) msg += " (a fractional number)";
    fail(loc, field, msg);
  }
  if (*value < lo || *value > hi) {
    const std::string range = hi == INT64_MAX ? "at least " + std::to_string(lo)
                                              : "between " + std::to_string(lo) + " and " + std::to_string(hi);
    fail(loc, field, "must be " + range + ", got " + std::to_string(*value));
  }
  record(field, loc);
  return value;
}

std::optional<double> Reader::number(const Map& m, std::string_view key) const {
  if (!m.has(key)) return std::nullopt;
  const std::string field = m.child(key);
  const SourceLocation loc = value_location(m, key);
  const std::string text = scalar(m, key, "a number");
  const YAML::Node& node = entry(m, key).value;
  const auto value = is_quoted(node) ? std::nullopt : parse_number(text);
  if (!value) fail(loc, field, "expected a finite number, got " + shown(node));
  record(field, loc);
  return value;
}

std::optional<bool> Reader::boolean(const Map& m, std::string_view key) const {
  if (!m.has(key)) return std::nullopt;
  const std::string field = m.child(key);
  const SourceLocation loc = value_location(m, key);
  const std::string text = scalar(m, key, "true or false");
  const YAML::Node& node = entry(m, key).value;
  std::optional<bool> value;
  if (!is_quoted(node)) {
    if (text == "true" || text == "True" || text == "TRUE") value = true;
    if (text == "false" || text == "False" || text == "FALSE") value = false;
  }
  if (!value) fail(loc, field, "expected true or false, got " + shown(node));
  record(field, loc);
  return value;
}

std::optional<std::string> Reader::string(const Map& m, std::string_view key) const {
  if (!m.has(key)) return std::nullopt;
  const std::string field = m.child(key);
  const SourceLocation loc = value_location(m, key);
  const YAML::Node& node = entry(m, key).value;
  if (node.IsNull() || (node.IsScalar() && node.Scalar().empty())) fail(loc, field, "expected a non-empty string, got nothing");
  std::string text = scalar(m, key, "a string");
  record(field, loc);
  return text;
}

std::optional<std::string> Reader::choice(const Map& m, std::string_view key, const std::vector<std::string>& allowed) const {
  auto text = string(m, key);
  if (!text) return text;
  for (const auto& a : allowed)
    if (a == *text) return text;
  std::string msg = "unknown value '" + *text + "'";
  if (auto near = closest_match(*text, allowed)) msg += "; did you mean '" + *near + "'?";
  msg += " (one of " + join(allowed) + ")";
  fail(value_location(m, key), m.child(key), msg);
}

std::optional<std::vector<std::pair<std::string, SourceLocation>>> Reader::strings(const Map& m, std::string_view key) const {
  if (!m.has(key)) return std::nullopt;
  const std::string field = m.child(key);
  const SourceLocation loc = value_location(m, key);
  const YAML::Node& node = entry(m, key).value;
  if (!node.IsSequence()) fail(loc, field, std::string("expected a list like [a, b], got ") + describe(node));
  std::vector<std::pair<std::string, SourceLocation>> out;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    const std::string item_field = field + "[" + std::to_string(i) + "]";
    if (!item.IsScalar() || item.Scalar().empty())
      fail(at(item).line > 0 ? at(item) : loc, item_field, std::string("expected a string, got ") + describe(item));
    out.emplace_back(item.Scalar(), at(item));
    record(item_field, at(item));
  }
  record(field, loc);
  return out;
}

}  // namespace kvc::frontend::yaml
