#pragma once
// The main blocks of one layer for the whole batch: a fixed number of equal
// slots allocated once, handed out and taken back through a free list, so an
// evicted block's slot is reused and the layer never holds more than the plan's
// main_block_capacity x kv_heads x batch blocks. Thread-safe (sequences of one
// layer append from different threads).
// Slots are zero until first written, and pages are committed only then.
#include <cstdint>
#include <mutex>
#include <vector>

#include "support/large_buffer.h"

namespace kvc::runtime {

class BlockPool {
 public:
  BlockPool(std::int64_t slots, std::int64_t slot_bytes);

  // A free slot; throws kvc::Error when none is left (the per-head caps of the
  // store make that a bug, not a user error).
  std::int64_t acquire();
  void release(std::int64_t slot);

  std::uint8_t* data(std::int64_t slot) { return bytes_.data() + slot * slot_bytes_; }
  const std::uint8_t* data(std::int64_t slot) const { return bytes_.data() + slot * slot_bytes_; }

  std::int64_t slots() const { return slots_; }
  std::int64_t slot_bytes() const { return slot_bytes_; }
  std::int64_t used() const;
  std::int64_t bytes() const { return slots_ * slot_bytes_; }

 private:
  std::int64_t slots_, slot_bytes_;
  LargeBuffer bytes_;  // zeroed, in huge pages where the kernel allows
  mutable std::mutex mutex_;
  std::vector<std::int64_t> free_;  // a stack: the most recently freed slot is reused first
};

}  // namespace kvc::runtime
