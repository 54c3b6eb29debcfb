#include "support/diagnostics.h"

namespace kvc {

std::string format_error(const SourceLocation& loc, const std::string& field, const std::string& message) {
  std::string out;
  if (!loc.file.empty()) {
    out += loc.file;
    if (loc.line > 0) {
      out += ":" + std::to_string(loc.line);
      if (loc.column > 0) out += ":" + std::to_string(loc.column);
    }
    out += ": ";
  }
  out += "error: ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

Error::Error(SourceLocation loc, std::string field, std::string message)
    : std::runtime_error(format_error(loc, field, message)),
      loc_(std::move(loc)),
      field_(std::move(field)),
      message_(std::move(message)) {}

}  // namespace kvc
