// HF config.json (frontend/hf_config.h), read from a file as kvc reads it.
#include <cstdint>
#include <string>

#include "frontend/hf_config.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = kvc::fuzz::write_input(data, size, "config.json");
  kvc::fuzz::run_reader(path, [&] { kvc::frontend::read_hf_config(path); });
  return 0;
}
