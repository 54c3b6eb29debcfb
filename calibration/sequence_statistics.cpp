#include "calibration/sequence_statistics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/reference/attention.h"
#include "ir/layout.h"
#include "backends/reference/quantize.h"
#include "backends/reference/retention_scores.h"
#include "calibration/key_spectrum.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::calibration {
namespace {

enum Policy { kStreaming = 0, kH2O = 1, kSnapKV = 2, kPolicies = 3 };

struct Dims {
  int L, H, Q, g, d, D, QD, T, P, FK, FV, R, F, G;  // FK, FV: key / value formats; G: max_group
};

Dims dims_of(const StatsMeta& m) {
  Dims x{};
  x.L = m.model.layers;
  x.H = m.model.kv_heads;
  x.Q = m.model.q_heads;
  x.g = x.Q / x.H;
  x.d = m.model.head_dim;
  x.D = x.H * x.d;
  x.QD = x.Q * x.d;
  x.T = m.length;
  x.P = m.prompt;
  x.FK = static_cast<int>(m.key_formats.size());
  x.FV = static_cast<int>(m.value_formats.size());
  x.R = static_cast<int>(m.keep_ratios.size());
  x.F = m.prefix_points;
  x.G = m.max_group;
  return x;
}

ir::QuantFormat key_format(const StatsMeta& m, const ir::SideFormat& side) {
  return ir::key_format(side, m.quant_token_group, m.model.head_dim, m.rotation_seed);
}
ir::QuantFormat value_format(const StatsMeta& m, const ir::SideFormat& side) {
  return ir::value_format(side, m.quant_channel_group, m.model.head_dim, m.rotation_seed);
}

// One KV head's column of a [tokens][kv_heads*head_dim] tensor, [tokens][head_dim].
std::vector<float> head_slice(const std::vector<float>& x, int tokens, int width, int offset, int d, bool to_half) {
  std::vector<float> out(static_cast<std::size_t>(tokens) * d);
  for (int t = 0; t < tokens; ++t)
    for (int c = 0; c < d; ++c) {
      const float v = x[static_cast<std::size_t>(t) * width + offset + c];
      out[static_cast<std::size_t>(t) * d + c] = to_half ? round_to_half(v) : v;
    }
  return out;
}

// x [tokens][d] with the prompt's whole blocks of `block` tokens encoded in format f and
// decoded back (the rest unchanged, like a cache's fp16 tail).
std::vector<float> fake_quantize(const std::vector<float>& x, int prompt, int d, int block, const ir::QuantFormat& f) {
  std::vector<float> out = x;
  std::vector<std::uint8_t> buf(static_cast<std::size_t>(ir::section_bytes(f, d, block)));
  for (int t0 = 0; t0 + block <= prompt; t0 += block) {
    float* rows = out.data() + static_cast<std::size_t>(t0) * d;
    reference::encode_section(f, d, block, rows, buf.data());
    reference::decode_section(f, d, block, buf.data(), rows);
  }
  return out;
}

double relative_error(const float* ref, const float* approx, std::size_t n) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(ref[i]) - approx[i];
    num += e * e;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : 1.0;
  return std::sqrt(num / den);
}

// Queries [g][d] of KV head `kvh` at position t.
void group_queries(const std::vector<float>& q, const Dims& x, int t, int kvh, float* out) {
  const float* row = q.data() + static_cast<std::size_t>(t) * x.QD + static_cast<std::size_t>(kvh) * x.g * x.d;
  std::copy(row, row + static_cast<std::size_t>(x.g) * x.d, out);
}

// Prompt tokens kept by one policy at `keep` tokens, ascending.
std::vector<int> select_tokens(Policy policy, int keep, int prompt, int sink, int snap_window,
                               const std::vector<double>& h2o_scores, const std::vector<double>& snap_scores) {
  keep = std::clamp(keep, 1, prompt);
  std::vector<int> kept;
  auto newest = [&](int n) {
    for (int j = prompt - n; j < prompt; ++j) kept.push_back(j);
  };
  // The `n` highest-scored tokens among [0, limit); ties keep the older token.
  auto top = [&](const std::vector<double>& s, int n, int limit) {
    std::vector<int> idx(limit);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] > s[b]; });
    kept.insert(kept.end(), idx.begin(), idx.begin() + n);
  };
  switch (policy) {
    case kStreaming: {
      const int s = std::min(sink, keep);
      for (int j = 0; j < s; ++j) kept.push_back(j);
      newest(keep - s);
      break;
    }
    case kH2O: {
      const int recent = keep / 2;
      top(h2o_scores, keep - recent, prompt - recent);
      newest(recent);
      break;
    }
    default: {
      const int window = std::min(snap_window, keep);
      top(snap_scores, keep - window, prompt - window);
      newest(window);
      break;
    }
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

// Causal attention of every prompt query: column sums per query head (H2O, PrefixKV)
// and CAKE's window terms per KV head.
struct PromptAttention {
  std::vector<double> colsum;        // [Q][P]
  std::vector<double> cake_entropy;  // [H]
  std::vector<double> cake_variance; // [H]
};

PromptAttention prompt_attention(const StatsMeta& m, const Dims& x, const std::vector<float>& q,
                                 const std::vector<std::vector<float>>& keys) {
  PromptAttention r;
  r.colsum.assign(static_cast<std::size_t>(x.Q) * x.P, 0.0);
  r.cake_entropy.assign(x.H, 0.0);
  r.cake_variance.assign(x.H, 0.0);
  const int w = std::min(m.cake_window, x.P - 1);  // at least one non-window key
  const int nonwin = x.P - w;
  const double scale = 1.0 / std::sqrt(static_cast<double>(x.d));
  std::vector<double> a(x.P), sum(nonwin), sumsq(nonwin);
  for (int qh = 0; qh < x.Q; ++qh) {
    const int kvh = qh / x.g;
    const std::vector<float>& k = keys[kvh];
    double* col = r.colsum.data() + static_cast<std::size_t>(qh) * x.P;
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(sumsq.begin(), sumsq.end(), 0.0);
    for (int p = 0; p < x.P; ++p) {
      const float* qv = q.data() + static_cast<std::size_t>(p) * x.QD + static_cast<std::size_t>(qh) * x.d;
      double mx = -INFINITY;
      for (int j = 0; j <= p; ++j) {
        const float* kv = k.data() + static_cast<std::size_t>(j) * x.d;
        double s = 0;
        for (int c = 0; c < x.d; ++c) s += static_cast<double>(qv[c]) * kv[c];
        a[j] = s * scale;
        mx = std::max(mx, a[j]);
      }
      double z = 0;
      for (int j = 0; j <= p; ++j) z += (a[j] = std::exp(a[j] - mx));
      for (int j = 0; j <= p; ++j) col[j] += (a[j] /= z);
      if (p >= nonwin) {
        for (int j = 0; j < nonwin; ++j) {
          r.cake_entropy[kvh] -= a[j] * std::log(a[j] + 1e-10);
          sum[j] += a[j];
          sumsq[j] += a[j] * a[j];
        }
      }
    }
    for (int j = 0; j < nonwin; ++j) {
      const double mean = sum[j] / w;
      r.cake_variance[kvh] += std::max(0.0, sumsq[j] / w - mean * mean);
    }
  }
  return r;
}

std::vector<float> prefix_curve(const Dims& x, const std::vector<double>& colsum) {
  std::vector<double> s(x.P, 0.0);
  for (int qh = 0; qh < x.Q; ++qh)
    for (int j = 0; j < x.P; ++j) s[j] += colsum[static_cast<std::size_t>(qh) * x.P + j] / x.Q;
  std::sort(s.begin(), s.end(), std::greater<>());
  std::vector<double> cum(x.P);
  double acc = 0;
  for (int j = 0; j < x.P; ++j) cum[j] = (acc += s[j]);
  std::vector<float> f(x.F);
  for (int i = 0; i < x.F; ++i) {
    const auto k = static_cast<int>(std::ceil(static_cast<double>(x.P) * (i + 1) / x.F));
    f[i] = acc > 0 ? static_cast<float>(cum[std::clamp(k, 1, x.P) - 1] / acc) : 1.0f;
  }
  return f;
}

}  // namespace

void check_statistics_settings(const StatsMeta& m) {
  const int d = m.model.head_dim;
  // A block of quant_token_group tokens is what a per-channel key group spans; per-token
  // formats code the same tokens one at a time.
  auto block = [&](const ir::QuantFormat& f) { return f.axis == ir::QuantAxis::PerChannel ? m.quant_token_group : 1; };
  for (const ir::SideFormat& side : m.key_formats) {
    const ir::QuantFormat f = key_format(m, side);
    reference::check_format(f, d, block(f), ("calibration key format " + side.name()).c_str());
  }
  for (const ir::SideFormat& side : m.value_formats) {
    const ir::QuantFormat f = value_format(m, side);
    reference::check_format(f, d, block(f), ("calibration value format " + side.name()).c_str());
  }
  if (m.prompt < 2) throw Error({}, "prompt", "calibration needs a prompt of at least 2 tokens");
  for (double r : m.keep_ratios)
    if (!(r > 0.0 && r <= 1.0)) throw Error({}, "keep_ratios", "keep ratios must lie in (0, 1]");
}

SequenceStatistics measure_sequence(const StatsMeta& m, const SequenceActivations& acts) {
  const Dims x = dims_of(m);
  if (acts.tokens != x.T || static_cast<int>(acts.layers.size()) != x.L)
    throw Error("calibration: a sequence's activations do not match the calibration length / layers");
  SequenceStatistics s;
  s.quant_output_error.assign(static_cast<std::size_t>(x.L) * x.H * x.FK * x.FV, 0.0f);
  s.quant_key_error.assign(static_cast<std::size_t>(x.L) * x.H * x.FK, 0.0);
  s.quant_value_error.assign(static_cast<std::size_t>(x.L) * x.H * x.FV, 0.0);
  s.retention_output_error.assign(static_cast<std::size_t>(x.L) * x.H * kPolicies * x.R, 0.0f);
  s.prefix_curve.assign(static_cast<std::size_t>(x.L) * x.F, 0.0f);
  s.cake_entropy.assign(static_cast<std::size_t>(x.L) * x.H, 0.0f);
  s.cake_variance.assign(s.cake_entropy.size(), 0.0f);
  const std::size_t per_channel = static_cast<std::size_t>(x.L) * x.H * x.d;
  s.key_min.assign(per_channel, INFINITY);
  s.key_max.assign(per_channel, -INFINITY);
  s.key_sum.assign(per_channel, 0.0);
  s.key_sumsq.assign(per_channel, 0.0);
  s.value_min.assign(per_channel, INFINITY);
  s.value_max.assign(per_channel, -INFINITY);
  s.value_token_range.assign(static_cast<std::size_t>(x.L) * x.H * x.T, 0.0f);
  s.value_token_absmax.assign(s.value_token_range.size(), 0.0f);
  s.key_gram.assign(static_cast<std::size_t>(x.L) * x.G, {});

  const int n_dec = x.T - x.P;
  const std::size_t gd = static_cast<std::size_t>(x.g) * x.d;
  std::vector<float> qg(gd), out(gd), ref_out(static_cast<std::size_t>(n_dec) * gd), probs;

  for (int l = 0; l < x.L; ++l) {
    const LayerActivations& la = acts.layers[l];
    std::vector<std::vector<float>> keys(x.H), values(x.H);
    for (int h = 0; h < x.H; ++h) {
      keys[h] = head_slice(la.k, x.T, x.D, h * x.d, x.d, true);
      values[h] = head_slice(la.v, x.T, x.D, h * x.d, x.d, true);
    }
    const PromptAttention pa = prompt_attention(m, x, la.q, keys);
    const std::vector<float> curve = prefix_curve(x, pa.colsum);
    std::copy(curve.begin(), curve.end(), s.prefix_curve.begin() + static_cast<std::size_t>(l) * x.F);

    for (int h = 0; h < x.H; ++h) {
      const std::size_t lh = static_cast<std::size_t>(l) * x.H + h;
      s.cake_entropy[lh] = static_cast<float>(pa.cake_entropy[h]);
      s.cake_variance[lh] = static_cast<float>(pa.cake_variance[h]);
      const std::vector<float>& k = keys[h];
      const std::vector<float>& v = values[h];

      // Distributions (raw fp32 activations).
      for (int t = 0; t < x.T; ++t) {
        double vmin = INFINITY, vmax = -INFINITY, vabs = 0;
        for (int c = 0; c < x.d; ++c) {
          const std::size_t i = lh * x.d + c;
          const double kv = la.k[static_cast<std::size_t>(t) * x.D + h * x.d + c];
          const double vv = la.v[static_cast<std::size_t>(t) * x.D + h * x.d + c];
          s.key_min[i] = std::min(s.key_min[i], kv);
          s.key_max[i] = std::max(s.key_max[i], kv);
          s.key_sum[i] += kv;
          s.key_sumsq[i] += kv * kv;
          s.value_min[i] = std::min(s.value_min[i], vv);
          s.value_max[i] = std::max(s.value_max[i], vv);
          vmin = std::min(vmin, vv);
          vmax = std::max(vmax, vv);
          vabs = std::max(vabs, std::abs(vv));
        }
        s.value_token_range[lh * x.T + t] = static_cast<float>(vmax - vmin);
        s.value_token_absmax[lh * x.T + t] = static_cast<float>(vabs);
      }

      // Reference outputs of the decode queries over the fp16 keys and values.
      for (int i = 0; i < n_dec; ++i) {
        group_queries(la.q, x, x.P + i, h, qg.data());
        reference::exact_attention(qg.data(), k.data(), v.data(), x.P + i + 1, x.d, x.g,
                                   ref_out.data() + static_cast<std::size_t>(i) * gd);
      }
      auto add_output_error = [&](float& slot, int i, const float* approx) {
        double e = 0;
        for (int qi = 0; qi < x.g; ++qi)
          e += relative_error(ref_out.data() + static_cast<std::size_t>(i) * gd + static_cast<std::size_t>(qi) * x.d,
                              approx + static_cast<std::size_t>(qi) * x.d, x.d);
        slot += static_cast<float>(e / (static_cast<double>(x.g) * n_dec));
      };

      // C. Quantization sensitivity: probabilities depend on the key format only, outputs on both.
      std::vector<std::vector<float>> kq(x.FK), vq(x.FV);
      const std::size_t quantized = static_cast<std::size_t>(x.P / m.quant_token_group) * m.quant_token_group * x.d;
      for (int b = 0; b < x.FK; ++b) {
        kq[b] = fake_quantize(k, x.P, x.d, m.quant_token_group, key_format(m, m.key_formats[b]));
        s.quant_key_error[lh * x.FK + b] = relative_error(k.data(), kq[b].data(), quantized);
      }
      for (int b = 0; b < x.FV; ++b) {
        vq[b] = fake_quantize(v, x.P, x.d, m.quant_token_group, value_format(m, m.value_formats[b]));
        s.quant_value_error[lh * x.FV + b] = relative_error(v.data(), vq[b].data(), quantized);
      }
      for (int i = 0; i < n_dec; ++i) {
        const int n = x.P + i + 1;
        group_queries(la.q, x, x.P + i, h, qg.data());
        probs.resize(static_cast<std::size_t>(x.g) * n);
        for (int kb = 0; kb < x.FK; ++kb) {
          reference::exact_attention(qg.data(), kq[kb].data(), v.data(), n, x.d, x.g, out.data(), probs.data());
          for (int vb = 0; vb < x.FV; ++vb) {
            for (int qi = 0; qi < x.g; ++qi) {
              const float* p = probs.data() + static_cast<std::size_t>(qi) * n;
              for (int c = 0; c < x.d; ++c) {
                double acc = 0;
                for (int j = 0; j < n; ++j) acc += static_cast<double>(p[j]) * vq[vb][static_cast<std::size_t>(j) * x.d + c];
                out[static_cast<std::size_t>(qi) * x.d + c] = static_cast<float>(acc);
              }
            }
            add_output_error(s.quant_output_error[(lh * x.FK + kb) * x.FV + vb], i, out.data());
          }
        }
      }

      // D. Retention: kept prompt tokens + every decode token up to the query.
      std::vector<double> h2o(x.P, 0.0);
      for (int qi = 0; qi < x.g; ++qi)
        for (int j = 0; j < x.P; ++j) h2o[j] += pa.colsum[static_cast<std::size_t>(h * x.g + qi) * x.P + j];
      const int snap_w = std::min(m.snapkv_window, x.P);
      const reference::WindowQueries wq{la.q.data() + static_cast<std::size_t>(x.P - snap_w) * x.QD + h * gd, snap_w,
                                        x.g, x.QD};
      const std::vector<double> snap = reference::snapkv_token_scores(k.data(), x.P, x.d, wq, m.snapkv_pool);
      std::vector<float> kk, vv;
      for (int pol = 0; pol < kPolicies; ++pol)
        for (int r = 0; r < x.R; ++r) {
          const int keep = static_cast<int>(std::lround(m.keep_ratios[r] * x.P));
          const std::vector<int> kept =
              select_tokens(static_cast<Policy>(pol), keep, x.P, m.sink, m.snapkv_window, h2o, snap);
          kk.clear();
          vv.clear();
          for (int j : kept) {
            kk.insert(kk.end(), k.begin() + static_cast<std::ptrdiff_t>(j) * x.d, k.begin() + static_cast<std::ptrdiff_t>(j + 1) * x.d);
            vv.insert(vv.end(), v.begin() + static_cast<std::ptrdiff_t>(j) * x.d, v.begin() + static_cast<std::ptrdiff_t>(j + 1) * x.d);
          }
          kk.insert(kk.end(), k.begin() + static_cast<std::ptrdiff_t>(x.P) * x.d, k.end());
          vv.insert(vv.end(), v.begin() + static_cast<std::ptrdiff_t>(x.P) * x.d, v.end());
          float& slot = s.retention_output_error[(lh * kPolicies + pol) * x.R + r];
          for (int i = 0; i < n_dec; ++i) {
            group_queries(la.q, x, x.P + i, h, qg.data());
            reference::exact_attention(qg.data(), kk.data(), vv.data(), static_cast<std::int64_t>(kept.size()) + i + 1,
                                       x.d, x.g, out.data());
            add_output_error(slot, i, out.data());
          }
        }
    }

    // E. Gram blocks K_l^T K_{l+o} (raw post-RoPE keys, all heads).
    for (int o = 0; o < x.G && l + o < x.L; ++o) {
      const std::vector<float>& a = la.k;
      const std::vector<float>& b = acts.layers[l + o].k;
      std::vector<double>& gram = s.key_gram[static_cast<std::size_t>(l) * x.G + o];
      gram.assign(static_cast<std::size_t>(x.D) * x.D, 0.0);
      for (int t = 0; t < x.T; ++t) {
        const float* ra = a.data() + static_cast<std::size_t>(t) * x.D;
        const float* rb = b.data() + static_cast<std::size_t>(t) * x.D;
        for (int i = 0; i < x.D; ++i) {
          const double ai = ra[i];
          double* row = gram.data() + static_cast<std::size_t>(i) * x.D;
          for (int j = 0; j < x.D; ++j) row[j] += ai * rb[j];
        }
      }
    }
  }
  return s;
}

CalibrationStats reduce_statistics(const StatsMeta& m, const std::vector<SequenceStatistics>& seqs) {
  const Dims x = dims_of(m);
  const int N = static_cast<int>(seqs.size());
  if (N != m.sequences || N == 0) throw Error("calibration: reduce_statistics got a different number of sequences");
  CalibrationStats stats;
  stats.meta = m;
  const auto shapes = expected_tensor_shapes(m);
  auto make = [&](const std::string& name) -> std::vector<float>& {
    StatsTensor& t = stats.tensors[name];
    t.shape = shapes.at(name);
    std::int64_t n = 1;
    for (std::int64_t e : t.shape) n *= e;
    t.data.assign(static_cast<std::size_t>(n), 0.0f);
    return t.data;
  };
  // Per-sequence table -> [N][...] tensor plus its mean and (optionally) p90 over sequences.
  auto per_sequence = [&](const std::string& name, auto member, bool with_p90) {
    std::vector<float>& all = make(name);
    std::vector<float>& mean = make(name + "_mean");
    std::vector<float>* p90 = with_p90 ? &make(name + "_p90") : nullptr;
    const std::size_t n = (seqs[0].*member).size();
    std::vector<double> column(N);
    for (std::size_t i = 0; i < n; ++i) {
      double sum = 0;
      for (int sq = 0; sq < N; ++sq) {
        column[sq] = (seqs[sq].*member)[i];
        all[static_cast<std::size_t>(sq) * n + i] = static_cast<float>(column[sq]);
        sum += column[sq];
      }
      mean[i] = static_cast<float>(sum / N);
      if (p90) (*p90)[i] = static_cast<float>(percentile(column, 0.9));
    }
  };
  per_sequence("quant_output_error", &SequenceStatistics::quant_output_error, true);
  per_sequence("retention_output_error", &SequenceStatistics::retention_output_error, true);
  per_sequence("prefix_curve", &SequenceStatistics::prefix_curve, false);
  per_sequence("cake_entropy", &SequenceStatistics::cake_entropy, false);
  per_sequence("cake_variance", &SequenceStatistics::cake_variance, false);
  for (auto [name, member] : {std::pair{"quant_key_error", &SequenceStatistics::quant_key_error},
                              std::pair{"quant_value_error", &SequenceStatistics::quant_value_error}}) {
    std::vector<float>& out = make(name);
    for (std::size_t i = 0; i < out.size(); ++i) {
      double sum = 0;
      for (const auto& sq : seqs) sum += (sq.*member)[i];
      out[i] = static_cast<float>(sum / N);
    }
  }

  // B. Distributions.
  const std::size_t per_channel = static_cast<std::size_t>(x.L) * x.H * x.d;
  std::vector<float>& kmin = make("key_channel_min");
  std::vector<float>& kmax = make("key_channel_max");
  std::vector<float>& kmean = make("key_channel_mean");
  std::vector<float>& kvar = make("key_channel_var");
  std::vector<double> vmin(per_channel, INFINITY), vmax(per_channel, -INFINITY);
  const double count = static_cast<double>(N) * x.T;
  for (std::size_t i = 0; i < per_channel; ++i) {
    double lo = INFINITY, hi = -INFINITY, sum = 0, sumsq = 0;
    for (const auto& sq : seqs) {
      lo = std::min(lo, sq.key_min[i]);
      hi = std::max(hi, sq.key_max[i]);
      sum += sq.key_sum[i];
      sumsq += sq.key_sumsq[i];
      vmin[i] = std::min(vmin[i], sq.value_min[i]);
      vmax[i] = std::max(vmax[i], sq.value_max[i]);
    }
    kmin[i] = static_cast<float>(lo);
    kmax[i] = static_cast<float>(hi);
    const double mean = sum / count;
    kmean[i] = static_cast<float>(mean);
    kvar[i] = static_cast<float>(std::max(0.0, sumsq / count - mean * mean));
  }
  // max channel range / median channel range: how much one channel dominates (KIVI's
  // reason to group keys per channel).
  auto outlier_ratio = [&](const std::vector<double>& lo, const std::vector<double>& hi, std::size_t lh) {
    std::vector<double> range(x.d);
    for (int c = 0; c < x.d; ++c) range[c] = hi[lh * x.d + c] - lo[lh * x.d + c];
    std::sort(range.begin(), range.end());
    const double median = x.d % 2 ? range[x.d / 2] : 0.5 * (range[x.d / 2 - 1] + range[x.d / 2]);
    return range.back() == 0.0 ? 0.0 : range.back() / std::max(median, 1e-30);
  };
  std::vector<double> kmin_d(kmin.begin(), kmin.end()), kmax_d(kmax.begin(), kmax.end());
  std::vector<float>& kout = make("key_outlier_ratio");
  std::vector<float>& vout = make("value_outlier_ratio");
  std::vector<float>& rmean = make("value_token_range_mean");
  std::vector<float>& r50 = make("value_token_range_p50");
  std::vector<float>& r99 = make("value_token_range_p99");
  std::vector<float>& rmax = make("value_token_range_max");
  std::vector<float>& amean = make("value_token_absmax_mean");
  std::vector<float>& amax = make("value_token_absmax_max");
  for (std::size_t lh = 0; lh < static_cast<std::size_t>(x.L) * x.H; ++lh) {
    kout[lh] = static_cast<float>(outlier_ratio(kmin_d, kmax_d, lh));
    vout[lh] = static_cast<float>(outlier_ratio(vmin, vmax, lh));
    std::vector<double> ranges, absmax;
    for (const auto& sq : seqs)
      for (int t = 0; t < x.T; ++t) {
        ranges.push_back(sq.value_token_range[lh * x.T + t]);
        absmax.push_back(sq.value_token_absmax[lh * x.T + t]);
      }
    rmean[lh] = static_cast<float>(std::accumulate(ranges.begin(), ranges.end(), 0.0) / ranges.size());
    r50[lh] = static_cast<float>(percentile(ranges, 0.5));
    r99[lh] = static_cast<float>(percentile(ranges, 0.99));
    rmax[lh] = static_cast<float>(*std::max_element(ranges.begin(), ranges.end()));
    amean[lh] = static_cast<float>(std::accumulate(absmax.begin(), absmax.end(), 0.0) / absmax.size());
    amax[lh] = static_cast<float>(*std::max_element(absmax.begin(), absmax.end()));
  }

  // E. Spectra of groups of adjacent layers from the pooled Gram blocks.
  for (int size = 1; size <= x.G && size <= x.L; ++size) {
    std::vector<float>& spectrum = make("key_spectrum_g" + std::to_string(size));
    std::vector<float>& errors = make("key_rank_error_g" + std::to_string(size));
    const int n = size * x.D;
    for (int l0 = 0; l0 + size <= x.L; ++l0) {
      std::vector<double> block(static_cast<std::size_t>(n) * n, 0.0);
      for (int a = 0; a < size; ++a)
        for (int b = a; b < size; ++b) {
          // Block (a, b) = K_{l0+a}^T K_{l0+b}, summed over sequences; (b, a) is its transpose.
          for (int i = 0; i < x.D; ++i)
            for (int j = 0; j < x.D; ++j) {
              double sum = 0;
              for (const auto& sq : seqs)
                sum += sq.key_gram[static_cast<std::size_t>(l0 + a) * x.G + (b - a)][static_cast<std::size_t>(i) * x.D + j];
              block[static_cast<std::size_t>(a * x.D + i) * n + b * x.D + j] = sum;
              block[static_cast<std::size_t>(b * x.D + j) * n + a * x.D + i] = sum;
            }
        }
      const std::vector<double> eig = gram_eigenvalues(block, n);
      const std::vector<double> err = rank_errors(eig);
      for (int i = 0; i < n; ++i) spectrum[static_cast<std::size_t>(l0) * n + i] = static_cast<float>(eig[i]);
      for (int i = 0; i <= n; ++i) errors[static_cast<std::size_t>(l0) * (n + 1) + i] = static_cast<float>(err[i]);
    }
  }
  validate_stats(stats, "<calibration>");
  return stats;
}

}  // namespace kvc::calibration
