#include "support/large_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <utility>

#include "support/diagnostics.h"

namespace kvc {
namespace {

TEST(LargeBuffer, IsZeroedAndWritableOverItsWholeSize) {
  // Larger than a huge page and not a multiple of one, so the advice and the tail both count.
  const std::size_t n = (std::size_t{5} << 20) + 123;
  LargeBuffer b(n);
  ASSERT_NE(b.data(), nullptr);
  ASSERT_EQ(b.size(), n);
  for (std::size_t i = 0; i < n; i += 4093) ASSERT_EQ(b.data()[i], 0) << i;
  EXPECT_EQ(b.data()[n - 1], 0);
  std::memset(b.data(), 0xab, n);
  EXPECT_EQ(b.data()[0], 0xab);
  EXPECT_EQ(b.data()[n - 1], 0xab);
}

TEST(LargeBuffer, MovesOwnershipAndEmptyIsNull) {
  LargeBuffer empty;
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(LargeBuffer(0).data(), nullptr);

  LargeBuffer a(1 << 16);
  a.data()[7] = 42;
  std::uint8_t* const p = a.data();
  LargeBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.data()[7], 42);

  LargeBuffer c(1 << 12);
  c = std::move(b);  // c's own mapping is released, b's taken over
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), std::size_t{1} << 16);
  EXPECT_EQ(b.data(), nullptr);
}

TEST(LargeBuffer, ImpossibleSizeThrowsKvcError) {
  EXPECT_THROW(LargeBuffer(~std::size_t{0} >> 1), Error);
}

}  // namespace
}  // namespace kvc
