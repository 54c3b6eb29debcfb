#pragma once
// The runtime soak: several threads drive sequences of one mixed plan through
// the C API (kvc.h) at random, each thread on sequences of its own: random
// prompt lengths appended in random chunks, decode steps (append, attend),
// batched attends, forks, frees and creates, until a time or operation limit.
// Every sequence has a twin of reference caches (backends/reference/
// reference_cache.h) given the same operations; after every operation
//   * every attention output equals the twin's: bit for bit with the reference
//     backend, to 1e-5 of its norm with llvm-jit (kvc.h "Kernels");
//   * kvc_memory_stats_get stays within the plan's estimate (ir/layout.h): the
//     allocation is the estimate, the live share is the estimate for the live
//     sequences, and what is used never exceeds it;
//   * calls the plan must refuse (an append past the context, a create or fork
//     beyond the batch) return their status and change nothing.
// Leaks are LeakSanitizer's job: scripts/soak.sh runs this in the ASan build
// with it on, and so does the soak test in sanitizer builds.
#include <cstdint>
#include <string>

#include "ir/plan.h"
#include "kvc.h"

namespace kvc::soak {

struct SoakOptions {
  int threads = 2;                   // host threads driving sequences
  double seconds = 1.0;              // stop after this long ...
  std::int64_t max_operations = 0;   // ... or this many operations in all (0 = no limit)
  std::uint32_t seed = 1;
  kvc_backend backend = KVC_BACKEND_REFERENCE;
  int runtime_threads = 1;           // the runtime's attention workers
};

struct SoakReport {
  std::int64_t operations = 0;  // every operation below, and each memory check after it
  std::int64_t creates = 0, forks = 0, frees = 0, prefills = 0;
  std::int64_t appended_tokens = 0, attends = 0, batch_attends = 0;
  std::int64_t refusals = 0;    // calls refused as they must be (capacity, context)
  double seconds = 0.0;
  int layers = 0;               // of the plan driven
  bool rotated = false;         // whether it had the rotated layers
  std::string failure;          // the first check that failed; empty when all held
};

// Layer 0 quantizes at 4/2 bits and evicts (StreamingLLM); layer 1 evicts by
// score (H2O) with low-rank keys in a per-sequence prefill basis; layer 2 stages
// its prompt for SnapKV at 2 bits; layer 3 keeps CAKE's selection with low-rank
// keys in a calibrated basis. With `rotated`, two more: layer 4 rotated 4-bit
// per-token keys and 2-bit codebook values, evicting by H2O; layer 5 rotated
// 3-bit keys and values, everything kept. `batch` sequences at most. run_soak
// adds the rotated layers on every backend that runs them.
ir::Module soak_module(std::int64_t batch, bool rotated);

SoakReport run_soak(const SoakOptions& options);

std::string describe(const SoakReport& report);

}  // namespace kvc::soak
