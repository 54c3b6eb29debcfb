#pragma once
// Writes small llama2.c checkpoints in the versioned layout (frontend/llama2c.h)
// with random weights, for loader and corruption tests: version 1 stores the
// weights as fp32, version 2 as int8 codes with one fp32 scale per group. The
// expected fp32 weights (what a correct loader returns) come back with the bytes.
#include <cstdint>
#include <vector>

#include "frontend/llama2c.h"

namespace kvc::testing {

struct VersionedCheckpoint {
  std::vector<std::uint8_t> bytes;
  frontend::Llama2cCheckpoint expected;  // header and the fp32 weights a loader must return
};

// h.version (1 or 2) and h.group_size (version 2) choose the encoding.
VersionedCheckpoint make_versioned_llama2c(const frontend::Llama2cHeader& h, std::uint64_t seed);

// A tiny valid header: dim 16, hidden 32, 2 layers, 4 heads, 2 kv heads, vocab 24,
// seq_len 32, group size 8, shared classifier.
frontend::Llama2cHeader tiny_versioned_header(int version);

}  // namespace kvc::testing
