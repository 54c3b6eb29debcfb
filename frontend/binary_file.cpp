#include "frontend/binary_file.h"

#include <filesystem>

#include "support/diagnostics.h"

namespace kvc::frontend {

void fail_at_offset(const std::string& path, std::int64_t offset, const std::string& message) {
  throw Error(SourceLocation{path, 0, 0}, "offset " + std::to_string(offset), message);
}

std::int64_t checked_mul(const std::string& path, std::int64_t offset, std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) fail_at_offset(path, offset, "header fields imply a size that overflows 64 bits");
  return r;
}

std::int64_t checked_add(const std::string& path, std::int64_t offset, std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) fail_at_offset(path, offset, "header fields imply a size that overflows 64 bits");
  return r;
}

std::int64_t file_size_of(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(SourceLocation{path, 0, 0}, "", "cannot read model file: " + ec.message());
  return static_cast<std::int64_t>(size);
}

}  // namespace kvc::frontend
