// llama2.c legacy checkpoints (frontend/llama2c.h): the header with its size
// check, the model info, and the whole checkpoint when the size matches.
#include <cstdint>
#include <string>

#include "frontend/llama2c.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = kvc::fuzz::write_input(data, size, "model.bin");
  if (!kvc::fuzz::run_reader(path, [&] { kvc::frontend::read_llama2c_info(path); })) return 0;
  kvc::fuzz::run_reader(path, [&] { kvc::frontend::read_llama2c_checkpoint(path); });
  return 0;
}
