#include "runtime/block_pool.h"

#include "support/diagnostics.h"

namespace kvc::runtime {

BlockPool::BlockPool(std::int64_t slots, std::int64_t slot_bytes)
    : slots_(slots), slot_bytes_(slot_bytes), bytes_(static_cast<std::size_t>(slots * slot_bytes)) {
  free_.reserve(static_cast<std::size_t>(slots));
  for (std::int64_t s = slots - 1; s >= 0; --s) free_.push_back(s);
}

std::int64_t BlockPool::acquire() {
  std::lock_guard lock(mutex_);
  if (free_.empty()) throw Error("internal: block pool exhausted");
  const std::int64_t s = free_.back();
  free_.pop_back();
  return s;
}

void BlockPool::release(std::int64_t slot) {
  std::lock_guard lock(mutex_);
  free_.push_back(slot);
}

std::int64_t BlockPool::used() const {
  std::lock_guard lock(mutex_);
  return slots_ - static_cast<std::int64_t>(free_.size());
}

}  // namespace kvc::runtime
