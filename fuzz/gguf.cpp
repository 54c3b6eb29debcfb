// GGUF (frontend/gguf.h): the header, metadata and tensor directory, the model
// info taken from them, and every tensor the directory lists converted to fp32
// (each is bounds-checked against the file, so a small input stays small).
#include <cstdint>
#include <string>

#include "frontend/gguf.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = kvc::fuzz::write_input(data, size, "model.gguf");
  kvc::frontend::GgufFile file;
  if (!kvc::fuzz::run_reader(path, [&] { file = kvc::frontend::GgufFile::open(path); })) return 0;
  kvc::fuzz::run_reader(path, [&] { kvc::frontend::gguf_model_info(file); });
  for (const kvc::frontend::GgufTensorInfo& t : file.tensors())
    kvc::fuzz::run_reader(path, [&] { file.read_tensor_f32(t); });
  return 0;
}
