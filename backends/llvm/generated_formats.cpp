#include "backends/llvm/generated_formats.h"

#include "support/diagnostics.h"

namespace kvc::llvm_backend {

namespace {

std::string describe(const ir::QuantFormat& f) {
  std::string s = "int" + std::to_string(f.bits) + " " + ir::to_string(f.axis) + " " + ir::to_string(f.scheme);
  if (f.rotation != ir::Rotation::None) s += std::string(" ") + ir::to_string(f.rotation) + "-rotated";
  return s;
}

std::string problem(const ir::QuantFormat& f, const char* tensor) {
  if (f.bits >= 16) return "";
  if (f.scheme == ir::QuantScheme::MinMax && f.rotation == ir::Rotation::None) return "";
  return std::string(tensor) + " format " + describe(f) +
         " has no generated kernel yet (the LLVM backend reads KIVI's min/scale codes of unrotated vectors); "
         "use target.backend: reference (kvc_options.backend = KVC_BACKEND_REFERENCE), which runs every format";
}

}  // namespace

std::string unsupported_format(const ir::KernelSpec& spec) {
  if (std::string why = problem(spec.key, "key"); !why.empty()) return why;
  return problem(spec.value, "value");
}

void require_generated_formats(const ir::KernelSpec& spec) {
  if (std::string why = unsupported_format(spec); !why.empty()) throw Error({}, "backend", why);
}

}  // namespace kvc::llvm_backend
