// The YAML spec (frontend/spec.h): parse_spec from memory, with the spec placed
// in the target's private scratch folder so model.from and calibration.stats
// resolve against a folder that holds nothing but the input itself. An accepted
// spec must also give a module (to_module).
#include <cstdint>
#include <string>

#include "frontend/spec.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = kvc::fuzz::scratch_dir() + "/spec.yaml";
  kvc::fuzz::run_reader(path, [&] {
    const kvc::frontend::Spec spec = kvc::frontend::parse_spec(text, path);
    spec.to_module();
  });
  return 0;
}
