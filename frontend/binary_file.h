#pragma once
// Helpers shared by the binary model-file readers: errors that name the file and
// the byte offset at fault, and size arithmetic that cannot wrap (a header with
// absurd fields must give an error, not a wrapped count that happens to match
// some file size).
#include <cstdint>
#include <string>

namespace kvc::frontend {

[[noreturn]] void fail_at_offset(const std::string& path, std::int64_t offset, const std::string& message);

// a * b and a + b for element and byte counts; on overflow, an error at `offset`.
std::int64_t checked_mul(const std::string& path, std::int64_t offset, std::int64_t a, std::int64_t b);
std::int64_t checked_add(const std::string& path, std::int64_t offset, std::int64_t a, std::int64_t b);

// The size of a file in bytes (kvc::Error naming the file when it cannot be read).
std::int64_t file_size_of(const std::string& path);

}  // namespace kvc::frontend
