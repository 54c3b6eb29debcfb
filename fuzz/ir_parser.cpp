// The plan IR text parser (ir/parser.h), and what it promises beyond not
// crashing: a module it accepts prints canonically (printing it, parsing the
// printout and printing again gives the same bytes) and the verifier can judge
// it without throwing.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_support.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string origin = "fuzz-plan.kvc";
  kvc::ir::Module module;
  if (!kvc::fuzz::run_reader(origin, [&] { module = kvc::ir::parse_module(text, origin); })) return 0;
  const std::string printed = kvc::ir::print_module(module);
  kvc::ir::Module reread;
  if (!kvc::fuzz::run_reader(origin, [&] { reread = kvc::ir::parse_module(printed, origin); }))
    kvc::fuzz::finding("the printout of an accepted module does not parse:\n" + printed);
  if (kvc::ir::print_module(reread) != printed)
    kvc::fuzz::finding("printing is not canonical for:\n" + printed);
  kvc::ir::verify_module(module);
  return 0;
}
