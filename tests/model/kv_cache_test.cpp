// The forward pass's side of the cache protocol, seen through a recording cache.
#include <gtest/gtest.h>

#include "model/forward.h"
#include "model/full_kv_cache.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::model {
namespace {

// Forwards to a FullKVCache and records every call.
class RecordingCache final : public KVCacheInterface {
 public:
  explicit RecordingCache(const CacheShape& s) : inner_(s) {}
  void begin_sequence() override {
    log.push_back("begin");
    inner_.begin_sequence();
  }
  void append(int layer, const float* k, const float* v, int n) override {
    log.push_back("append " + std::to_string(layer) + " " + std::to_string(n));
    inner_.append(layer, k, v, n);
  }
  void attend(int layer, const float* q, float* out) override {
    log.push_back("attend " + std::to_string(layer));
    inner_.attend(layer, q, out);
  }
  void end_prefill(int layer, const float* queries, int n) override {
    log.push_back("end_prefill " + std::to_string(layer) + " " + std::to_string(n));
    last_queries.assign(queries, queries + n * 64);
  }
  std::int64_t tokens(int layer) const override { return inner_.tokens(layer); }
  std::int64_t bytes() const override { return inner_.bytes(); }

  std::vector<std::string> log;
  std::vector<float> last_queries;

 private:
  FullKVCache inner_;
};

TEST(KVCacheProtocol, PrefillAppendsOncePerLayerThenDecodeAppendsAndAttends) {
  std::string bin;
  KVC_REQUIRE_MODEL_FILE(bin, "stories260K.bin");
  const Model m = Model::load(bin);
  RecordingCache cache(ForwardPass::cache_shape(m.config));
  ForwardPass fp(m, cache);
  fp.prefill({1, 461, 461});
  std::vector<std::string> want = {"begin"};
  for (int l = 0; l < 5; ++l) {
    want.push_back("append " + std::to_string(l) + " 3");
    want.push_back("end_prefill " + std::to_string(l) + " 3");
  }
  EXPECT_EQ(cache.log, want);
  EXPECT_EQ(cache.last_queries.size(), 3u * 64);
  cache.log.clear();
  fp.forward(401, 3);
  want.clear();
  for (int l = 0; l < 5; ++l) {
    want.push_back("append " + std::to_string(l) + " 1");
    want.push_back("attend " + std::to_string(l));
  }
  EXPECT_EQ(cache.log, want);
  // 4 tokens x 5 layers x (K + V) x 32 floats.
  EXPECT_EQ(cache.bytes(), 4 * 5 * 2 * 32 * 4);
  EXPECT_EQ(cache.tokens(4), 4);
}

TEST(FullKVCache, SingleTokenAttentionReturnsItsValue) {
  FullKVCache cache({1, 4, 2, 2});
  const float k[4] = {1, 2, 3, 4}, v[4] = {5, 6, 7, 8};
  cache.begin_sequence();
  cache.append(0, k, v, 1);
  const float q[8] = {1, 0, 0, 1, 1, 1, -1, -1};
  float out[8];
  cache.attend(0, q, out);
  // Query heads 0,1 read KV head 0 (v = 5,6), heads 2,3 read KV head 1 (v = 7,8).
  EXPECT_EQ(std::vector<float>(out, out + 8), (std::vector<float>{5, 6, 5, 6, 7, 8, 7, 8}));
  EXPECT_THROW(cache.attend(1, q, out), Error);
  cache.begin_sequence();
  EXPECT_EQ(cache.bytes(), 0);
  EXPECT_THROW(cache.attend(0, q, out), Error);
}

}  // namespace
}  // namespace kvc::model
