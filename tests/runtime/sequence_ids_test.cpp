// Sequence ids (kvc.h "Handles"): positive, and reused only after 2^31 - 1 later
// creations. Ids used to be next_id_++ on an int32, undefined past INT32_MAX.
#include <gtest/gtest.h>

#include <climits>

#include "runtime/plan_builders.h"
#include "runtime/status_error.h"
#include "runtime/store.h"

namespace kvc {
namespace {

runtime::Store store_with_ids_from(kvc_seq first) {
  runtime::StoreOptions options;
  options.first_sequence_id = first;
  return runtime::Store(testing::runtime_module(64, 1, 1, 64, /*batch=*/2, {testing::kivi_layer(16, 16, 32, 0)}),
                        options);
}

TEST(SequenceIds, WrapPastInt32MaxToOneSkippingLiveIds) {
  runtime::Store store = store_with_ids_from(INT32_MAX - 1);
  const kvc_seq a = store.create_sequence();
  const kvc_seq b = store.create_sequence();
  EXPECT_EQ(a, INT32_MAX - 1);
  EXPECT_EQ(b, INT32_MAX);
  store.free_sequence(b);
  EXPECT_EQ(store.create_sequence(), 1);  // after INT32_MAX: 1, never 0 or negative
  store.free_sequence(1);
  store.free_sequence(a);
  EXPECT_EQ(store.create_sequence(), 2);
}

TEST(SequenceIds, IdsMustStartPositive) {
  EXPECT_THROW(store_with_ids_from(0), runtime::StatusError);
  EXPECT_THROW(store_with_ids_from(-5), runtime::StatusError);
}

}  // namespace
}  // namespace kvc
