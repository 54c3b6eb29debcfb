#include "calibration/calibrate.h"

#include <algorithm>
#include <chrono>
#include <ostream>

#include "calibration/sequence_loop.h"
#include "calibration/token_sequences.h"
#include "model/forward.h"
#include "model/full_kv_cache.h"
#include "support/diagnostics.h"

namespace kvc::calibration {
namespace {

// The full fp32 cache, also keeping the prompt queries end_prefill hands over.
class RecordingCache final : public model::KVCacheInterface {
 public:
  explicit RecordingCache(const model::CacheShape& shape) : full_(shape), queries_(shape.layers) {}
  void begin_sequence() override { full_.begin_sequence(); }
  void append(int layer, const float* k, const float* v, int n) override { full_.append(layer, k, v, n); }
  void attend(int layer, const float* q, float* out) override { full_.attend(layer, q, out); }
  void end_prefill(int layer, const float* queries, int n) override {
    queries_.at(layer).assign(queries, queries + static_cast<std::size_t>(n) * q_dim_);
  }
  std::int64_t tokens(int layer) const override { return full_.tokens(layer); }
  std::int64_t bytes() const override { return full_.bytes(); }

  void set_q_dim(int q_dim) { q_dim_ = q_dim; }
  const model::FullKVCache& full() const { return full_; }
  std::vector<float>& queries(int layer) { return queries_.at(layer); }

 private:
  model::FullKVCache full_;
  std::vector<std::vector<float>> queries_;
  int q_dim_ = 0;
};

}  // namespace

std::vector<std::string> default_calibration_families() { return {"kivi", "t", "tr", "cr"}; }

ir::ModelShape model_shape(const model::Model& model) {
  ir::ModelShape s;
  s.name = model.name;
  s.layers = model.config.layers;
  s.q_heads = model.config.q_heads;
  s.kv_heads = model.config.kv_heads;
  s.head_dim = model.config.head_dim;
  s.rope_theta = model.config.rope_theta;
  return s;
}

StatsMeta calibration_meta(const model::Model& model, const CalibrateOptions& o) {
  if (o.sequences <= 0) throw Error({}, "--sequences", "must be positive");
  if (o.length < 8) throw Error({}, "--length", "must be at least 8 tokens");
  if (model.config.context > 0 && o.length > model.config.context)
    throw Error({}, "--length",
                std::to_string(o.length) + " tokens exceed the model's context of " + std::to_string(model.config.context));
  StatsMeta m;
  m.model = model_shape(model);
  m.source = o.source.describe();
  m.sequences = o.sequences;
  m.length = o.length;
  m.decode = o.decode > 0 ? o.decode : std::min(64, o.length / 4);
  if (m.decode >= o.length - 1) throw Error({}, "decode", "the decoded part must leave a prompt of at least 2 tokens");
  m.prompt = o.length - m.decode;
  m.seed = o.seed;
  for (const std::string& family : o.formats)
    for (int bits : {2, 3, 4, 8}) {
      std::string problem;
      const auto side = ir::family_side(family, bits, &problem);
      if (!side && !(bits == 8 && ir::family_side(family, 4))) throw Error({}, "--formats", problem);
      if (side) m.key_formats.push_back(*side);
    }
  m.value_formats = m.key_formats;
  auto add = [](std::vector<ir::SideFormat>& to, const std::vector<ir::SideFormat>& from) {
    for (const ir::SideFormat& f : from)
      if (f.bits < 16 && std::find(to.begin(), to.end(), f) == to.end()) to.push_back(f);
  };
  add(m.key_formats, o.extra_key_formats);
  add(m.value_formats, o.extra_value_formats);
  m.quant_token_group = 32;
  m.quant_channel_group = std::min(32, model.config.head_dim);
  m.keep_ratios = {0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75};
  m.cake_window = std::min(32, m.prompt / 2);
  check_statistics_settings(m);
  return m;
}

SequenceActivations record_activations(const model::Model& model, const std::vector<int>& tokens) {
  RecordingCache cache(model::ForwardPass::cache_shape(model.config));
  cache.set_q_dim(model.config.q_dim());
  model::ForwardPass fp(model, cache);
  fp.prefill(tokens);
  SequenceActivations acts;
  acts.tokens = static_cast<int>(tokens.size());
  acts.layers.resize(model.config.layers);
  for (int l = 0; l < model.config.layers; ++l) {
    acts.layers[l].k = cache.full().keys(l);
    acts.layers[l].v = cache.full().values(l);
    acts.layers[l].q = std::move(cache.queries(l));
  }
  return acts;
}

CalibrationStats calibrate(const model::Model& model, const CalibrateOptions& o) {
  const StatsMeta meta = calibration_meta(model, o);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<int>> inputs;
  inputs = read_source_sequences(model, o.source, o.sequences, o.length);

  std::vector<SequenceStatistics> results(o.sequences);
  for_each_sequence(
      o.sequences, o.threads,
      [&](int i) {
        results[i] = measure_sequence(meta, record_activations(model, sequence_tokens(model, inputs, o.seed, i, o.length)));
      },
      [&](int finished) {
        if (!o.progress) return;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        *o.progress << "kvc calibrate: sequence " << finished << "/" << o.sequences << " measured (" << s << " s)\n";
      });
  if (o.progress) *o.progress << "kvc calibrate: reducing statistics and key spectra\n";
  return reduce_statistics(meta, results);
}

}  // namespace kvc::calibration
