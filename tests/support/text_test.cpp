#include <gtest/gtest.h>

#include "support/text.h"

namespace kvc {
namespace {

TEST(Text, ByteSizes) {
  EXPECT_EQ(parse_byte_size("4GiB"), 4LL << 30);
  EXPECT_EQ(parse_byte_size("512 MiB"), 512LL << 20);
  EXPECT_EQ(parse_byte_size("1.5GB"), 1500000000LL);
  EXPECT_EQ(parse_byte_size("1000"), 1000);
  EXPECT_FALSE(parse_byte_size("4 parsecs"));
  EXPECT_FALSE(parse_byte_size("-1GiB"));
  EXPECT_FALSE(parse_byte_size("GiB"));
  EXPECT_FALSE(parse_byte_size("0.3B"));
  EXPECT_FALSE(parse_byte_size(std::string(400, '9') + "GiB"));
}

TEST(Text, ClosestMatch) {
  EXPECT_EQ(closest_match("kv_head", {"kv_heads", "q_heads", "layers"}), "kv_heads");
  EXPECT_FALSE(closest_match("zzzzzzzz", {"kv_heads", "layers"}));
}

}  // namespace
}  // namespace kvc

namespace kvc {
namespace {

TEST(SplitList, KeepsTheNonEmptyItemsInOrder) {
  EXPECT_EQ(split_list("K4V2,tau1=2,,gamma=3,"), (std::vector<std::string>{"K4V2", "tau1=2", "gamma=3"}));
  EXPECT_EQ(split_list(""), std::vector<std::string>{});
  EXPECT_EQ(split_list(",,"), std::vector<std::string>{});
  EXPECT_EQ(split_list("a;b", ';'), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace kvc
