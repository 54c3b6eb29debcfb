#pragma once
// Errors that point at their cause. Every user-facing failure in kvc is a
// kvc::Error carrying where it came from (file, 1-based line and column, and the
// field path such as `search.precision.group`), so the CLI can print one line
// `file:line:col: error: field: message` and exit with status 2.
#include <stdexcept>
#include <string>

namespace kvc {

struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based; 0 = unknown
};

class Error : public std::runtime_error {
 public:
  Error(SourceLocation loc, std::string field, std::string message);
  explicit Error(std::string message) : Error({}, {}, std::move(message)) {}

  const SourceLocation& location() const { return loc_; }
  const std::string& field() const { return field_; }
  const std::string& message() const { return message_; }

 private:
  SourceLocation loc_;
  std::string field_;
  std::string message_;
};

// "file:line:col: error: field: message" with the absent parts left out.
std::string format_error(const SourceLocation& loc, const std::string& field, const std::string& message);

}  // namespace kvc
