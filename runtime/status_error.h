#pragma once
// A kvc::Error that also says which kvc_status the C API returns for it.
#include <string>

#include "kvc.h"
#include "support/diagnostics.h"

namespace kvc::runtime {

class StatusError : public Error {
 public:
  StatusError(kvc_status status, std::string message) : Error(std::move(message)), status_(status) {}
  kvc_status status() const { return status_; }

 private:
  kvc_status status_;
};

[[noreturn]] inline void fail(kvc_status status, const std::string& message) { throw StatusError(status, message); }

}  // namespace kvc::runtime
