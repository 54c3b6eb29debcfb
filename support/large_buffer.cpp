#include "support/large_buffer.h"

#include <sys/mman.h>

#include <string>
#include <utility>

#include "support/diagnostics.h"

namespace kvc {

LargeBuffer::LargeBuffer(std::size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error("out of memory: could not map " + std::to_string(bytes) + " bytes");
#ifdef MADV_HUGEPAGE
  // Advice only: where THP is off the buffer simply keeps 4 KiB pages.
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  data_ = static_cast<std::uint8_t*>(p);
}

LargeBuffer::~LargeBuffer() {
  if (data_) munmap(data_, size_);
}

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

}  // namespace kvc
