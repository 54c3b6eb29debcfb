#pragma once
// Pipelines of named passes: `-p uniform,estimate,legalize`, with the IR printed
// between passes (--print-after-all) and a per-pass timing table (--time-passes).
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "passes/pass.h"

namespace kvc::passes {

// A pass as named in a pipeline: `name` or `name<argument>` (e.g. `uniform<K4V2>`).
struct PassInvocation {
  std::string name;
  std::string argument;
};

using PassFactory = std::function<std::unique_ptr<Pass>(const std::string& argument)>;

struct PassInfo {
  std::string name;
  std::string description;
  PassFactory create;
};

// Every pass kvc has, in the order `kvc compile --help` lists them.
const std::vector<PassInfo>& pass_registry();

// Parses "a,b<arg>,c"; throws kvc::Error (field "pipeline") for an unknown pass,
// suggesting the closest name.
std::vector<PassInvocation> parse_pipeline(const std::string& text);

// The pipeline the spec implies when none is given explicitly.
std::string default_pipeline(const PassContext& ctx);
// The search pass the spec's `search:` section asks for ("joint", "kvtuner",
// "prefixkv", "cake", "xkv"), or "uniform" when it asks for none.
std::string calibrated_search_pass(const PassContext& ctx);

struct PassTiming {
  std::string name;
  double seconds = 0;
};

class PassManager {
 public:
  explicit PassManager(const std::vector<PassInvocation>& pipeline);

  // Prints the module after each pass to `out` (LLVM's -print-after-all).
  void print_after_all(std::ostream* out) { print_after_all_ = out; }

  void run(ir::Module& module, PassContext& ctx);
  const std::vector<PassTiming>& timings() const { return timings_; }

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
  std::ostream* print_after_all_ = nullptr;
  std::vector<PassTiming> timings_;
};

// LLVM-style "===-- Pass execution timing report --===" table.
void print_timings(std::ostream& out, const std::vector<PassTiming>& timings);

}  // namespace kvc::passes
