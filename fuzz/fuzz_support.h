#pragma once
// What every fuzz target shares. A target feeds its input to one reader and
// treats exactly one outcome of bad input as expected: a kvc::Error whose message
// names where the bytes came from (the file path or the origin the reader was
// given), because that is what every reader promises its users. Anything else
// that escapes (another exception type, an error that does not say which file is
// at fault) aborts, so libFuzzer records the input as a finding; sanitizer
// reports and timeouts are findings on their own.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

namespace kvc::fuzz {

// A file holding the input, for readers that only take a path: one path per
// process (rewritten for each input) in a private folder removed at exit.
// `name` is the file's name, so a reader that looks at the extension sees one.
std::string write_input(const std::uint8_t* data, std::size_t size, const std::string& name);

// The private folder write_input uses (created on first use); a reader that
// resolves relative paths against its input's folder finds nothing else there.
std::string scratch_dir();

// A finding when an error's message does not contain `origin`.
void check_error_names(const std::string& message, const std::string& origin);

// Prints `what` and aborts (the input is a finding).
[[noreturn]] void finding(const std::string& what);

// run_reader's verdict on one exception: returns for a kvc::Error naming `origin`.
void classify(const std::exception& e, const std::string& origin);

// Runs `read`. A kvc::Error naming `origin` returns false; success returns true;
// every other exception is a finding. An empty `origin` accepts any kvc::Error
// (for calls whose errors are about their arguments, not a file).
template <typename Read>
bool run_reader(const std::string& origin, Read&& read) {
  try {
    read();
    return true;
  } catch (const std::exception& e) {
    classify(e, origin);
    return false;
  }
}

}  // namespace kvc::fuzz
