// The model loader (model/model.h Model::load): format by content (GGUF or
// llama2.c), every tensor checked against the shape. A model it returns must
// pass its own validate().
#include <cstdint>
#include <string>

#include "fuzz/fuzz_support.h"
#include "model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = kvc::fuzz::write_input(data, size, "model.bin");
  kvc::model::Model model;
  if (!kvc::fuzz::run_reader(path, [&] { model = kvc::model::Model::load(path); })) return 0;
  if (!kvc::fuzz::run_reader(path, [&] { model.validate(); }))
    kvc::fuzz::finding("Model::load returned a model that fails validate()");
  return 0;
}
