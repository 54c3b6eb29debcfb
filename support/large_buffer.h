#pragma once
// Zeroed bytes for a cache-sized arena (a layer's block pool, a benchmark's
// layers). Taken straight from the kernel (anonymous mmap) so that pages are
// zero without a memset and committed only when first written, and advised as
// transparent huge pages: a decode step streams every block of every layer, and
// with 4 KiB pages each 2 MiB of cache costs 512 TLB misses and, on first touch,
// 512 page faults instead of one.
#include <cstddef>
#include <cstdint>

namespace kvc {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(std::size_t bytes);  // throws kvc::Error when the memory is not there
  ~LargeBuffer();
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;

  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace kvc
