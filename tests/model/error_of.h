#pragma once
// What a reader under test throws: corrupt files must give a kvc::Error (never
// another exception, a crash or silence).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "support/diagnostics.h"

namespace kvc::testing {

// The message of the kvc::Error `f` throws; "" when it throws nothing. Any other
// exception is a test failure.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-kvc exception: " << e.what();
    return "<non-kvc exception>";
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace kvc::testing
