#include "backends/reference/int8_dot_attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "backends/reference/quantize.h"
#include "ir/kernel_spec.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {
namespace {

ir::KernelSpec check_args(const ir::LayerPlan& plan, int head_dim, int g, const kvc_attend_args* a) {
  if (!a) throw Error("int8_dot_reference_attend: null arguments");
  if (head_dim <= 0 || g <= 0) throw Error("int8_dot_reference_attend: head_dim and group size must be positive");
  if (a->n_blocks < 0 || a->n_tail < 0) throw Error("int8_dot_reference_attend: negative token count");
  if (a->n_blocks > 0 && !a->blocks) throw Error("int8_dot_reference_attend: blocks is null");
  if (a->n_tail > 0 && (!a->tail_k || !a->tail_v)) throw Error("int8_dot_reference_attend: tail is null");
  if (!a->q || !a->out) throw Error("int8_dot_reference_attend: q or out is null");
  ir::KernelSpec spec;
  spec.head_dim = head_dim;
  spec.g = g;
  spec.key = plan.key;
  spec.value = plan.value;
  spec.lowrank = plan.lowrank.rank > 0;
  spec.key_dims = ir::key_dims(plan, head_dim);
  spec.token_block = ir::token_block(plan);
  spec.int8_dot = true;
  ir::validate(spec);  // names what makes the plan unfit for int8 dot products
  return spec;
}

// Scores of the B tokens of one per-channel key section for one scaled query qs.
void int8_block_scores(const std::uint8_t* sec, int dims, int block, int bits, const std::vector<float>& qs,
                       double* scores) {
  const std::size_t row = static_cast<std::size_t>(block) * static_cast<std::size_t>(bits) / 8;
  const std::uint8_t* mins = sec + 2 * static_cast<std::size_t>(dims);
  const std::uint8_t* codes = sec + 4 * static_cast<std::size_t>(dims);
  std::vector<float> x(static_cast<std::size_t>(dims));
  float amax = 0.0f;
  double base = 0.0;
  for (int c = 0; c < dims; ++c) {
    const std::size_t cs = static_cast<std::size_t>(c);
    x[cs] = qs[cs] * load_half(sec + 2 * cs);
    amax = std::max(amax, std::fabs(x[cs]));
    base += static_cast<double>(qs[cs]) * static_cast<double>(load_half(mins + 2 * cs));
  }
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  const float step = amax / 127.0f;
  std::vector<int> qi(static_cast<std::size_t>(dims));
  for (std::size_t c = 0; c < qi.size(); ++c)
    qi[c] = static_cast<int>(std::clamp(std::nearbyint(x[c] * inv), -127.0f, 127.0f));
  for (int t = 0; t < block; ++t) {
    std::int64_t dot = 0;
    for (int c = 0; c < dims; ++c)
      dot += static_cast<std::int64_t>(qi[static_cast<std::size_t>(c)]) *
             unpack_code(codes + static_cast<std::size_t>(c) * row, static_cast<std::size_t>(t), bits);
    scores[t] = static_cast<double>(step) * static_cast<double>(dot) + base;
  }
}

// Weights within this relative distance of a rounding tie may round either way
// in a kernel, whose scores differ from these in their last bits.
constexpr float kTieEpsilon = 1e-4f;

// The middle of the code range: the weights' rounding multiplies codes measured
// from here (see the header).
double code_midpoint(int bits) { return 0.5 * static_cast<double>((1 << bits) - 1); }

// Adds one per-token value block's contribution for one head: weight * V_d (the
// header's definition) to acc, and weight * step * c_td over near-tie tokens to allow.
void int8_block_values(const std::uint8_t* sec, const ir::QuantFormat& f, int head_dim, int block,
                       const double* scores, double top, double inv_l, double* acc, double* allow) {
  const std::size_t tok_bytes = static_cast<std::size_t>(ir::section_bytes(f, head_dim, 1));
  const int groups = head_dim / f.group;
  const float top_weight = f.bits == 8 ? 127.0f : 255.0f;
  std::vector<float> r(static_cast<std::size_t>(block)), s(r.size());
  float block_max = -std::numeric_limits<float>::infinity();
  for (int t = 0; t < block; ++t) block_max = std::max(block_max, static_cast<float>(scores[t]));
  for (std::size_t t = 0; t < r.size(); ++t) r[t] = std::exp(static_cast<float>(scores[t]) - block_max);
  const double weight = std::exp(static_cast<double>(block_max) - top) * inv_l;
  std::vector<int> u(r.size());
  std::vector<char> tie(r.size());
  for (int gr = 0; gr < groups; ++gr) {
    float smax = 0.0f;
    double min_sum = 0.0, a_sum = 0.0, u_sum = 0.0;
    for (std::size_t t = 0; t < r.size(); ++t) {
      const std::uint8_t* tok = sec + t * tok_bytes;
      s[t] = load_half(tok + 2 * static_cast<std::size_t>(gr));
      smax = std::max(smax, s[t]);
      a_sum += r[t] * s[t];
      min_sum += static_cast<double>(r[t]) * load_half(tok + 2 * static_cast<std::size_t>(groups + gr));
    }
    const float inv = smax > 0.0f ? top_weight / smax : 0.0f;
    const float step = smax / top_weight;
    for (std::size_t t = 0; t < r.size(); ++t) {
      const float w = s[t] * inv;  // per block and group: the kernels compute it once for all heads
      const float x = r[t] * w;
      u[t] = static_cast<int>(std::clamp(std::nearbyint(x), 0.0f, top_weight));
      u_sum += u[t];
      tie[t] = std::fabs(x - std::floor(x) - 0.5f) <= kTieEpsilon * std::max(x, 1.0f);
    }
    const double mid = code_midpoint(f.bits);
    const double centre = mid * (a_sum - static_cast<double>(step) * u_sum);
    for (int d = gr * f.group; d < (gr + 1) * f.group; ++d) {
      std::int64_t dot = 0;
      double near_tie = 0.0;
      for (std::size_t t = 0; t < r.size(); ++t) {
        const std::int64_t c = unpack_code(sec + t * tok_bytes + 4 * static_cast<std::size_t>(groups),
                                           static_cast<std::size_t>(d), f.bits);
        dot += u[t] * c;
        if (tie[t]) near_tie += std::fabs(static_cast<double>(c) - mid);
      }
      const std::size_t ds = static_cast<std::size_t>(d);
      acc[ds] += weight * (static_cast<double>(step) * static_cast<double>(dot) + min_sum + centre);
      allow[ds] += weight * static_cast<double>(step) * near_tie;
    }
  }
}

}  // namespace

void int8_dot_reference_attend(const ir::LayerPlan& plan, int head_dim, int g, const kvc_attend_args* a,
                               float* allowance) {
  const ir::KernelSpec spec = check_args(plan, head_dim, g, a);
  const bool int8_keys = ir::int8_dot_keys(spec);
  const bool int8_values = ir::int8_dot_values(spec);
  const int b = ir::token_block(plan);
  const std::size_t bs = static_cast<std::size_t>(b);
  const std::size_t hd = static_cast<std::size_t>(head_dim);
  const std::size_t n_main = static_cast<std::size_t>(a->n_blocks) * bs;
  const std::size_t n_tail = static_cast<std::size_t>(a->n_tail);
  const std::size_t n = n_main + n_tail;
  const std::size_t k_section = static_cast<std::size_t>(ir::section_bytes(plan.key, spec.key_dims, b));

  // Keys and values of every held token, dequantized once (what is read as codes is read from the blocks).
  std::vector<float> main_k(n_main * hd), values(n * hd);
  for (std::int64_t i = 0; i < a->n_blocks; ++i) {
    if (!a->blocks[i]) throw Error("int8_dot_reference_attend: block pointer is null");
    const std::size_t first = static_cast<std::size_t>(i) * bs;
    decode_block(plan, head_dim, a->blocks[i], main_k.data() + first * hd, values.data() + first * hd);
  }
  for (std::size_t i = 0; i < n_tail * hd; ++i) values[n_main * hd + i] = half_to_float(a->tail_v[i]);

  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> qs(hd);
  std::vector<double> scores(n), w(n), acc(hd), allow(hd);
  for (int h = 0; h < g; ++h) {
    const float* q = a->q + static_cast<std::size_t>(h) * hd;
    for (std::size_t c = 0; c < hd; ++c) qs[c] = q[c] * scale;
    auto exact_score = [&](const float* k) {
      double s = 0.0;
      for (std::size_t c = 0; c < hd; ++c) s += static_cast<double>(qs[c]) * static_cast<double>(k[c]);
      return s;
    };
    for (std::int64_t i = 0; i < a->n_blocks; ++i) {
      double* block_scores = scores.data() + static_cast<std::size_t>(i) * bs;
      if (int8_keys) {
        int8_block_scores(a->blocks[i], head_dim, b, plan.key.bits, qs, block_scores);
      } else {
        for (std::size_t t = 0; t < bs; ++t)
          block_scores[t] = exact_score(main_k.data() + (static_cast<std::size_t>(i) * bs + t) * hd);
      }
    }
    std::vector<float> tail_key(hd);
    for (std::size_t t = 0; t < n_tail; ++t) {
      for (std::size_t c = 0; c < hd; ++c) tail_key[c] = half_to_float(a->tail_k[t * hd + c]);
      scores[n_main + t] = exact_score(tail_key.data());
    }
    float* out = a->out + static_cast<std::size_t>(h) * hd;
    float* allow_out = allowance ? allowance + static_cast<std::size_t>(h) * hd : nullptr;
    std::fill(out, out + hd, 0.0f);
    if (allow_out) std::fill(allow_out, allow_out + hd, 0.0f);
    if (n == 0) continue;
    const double top = *std::max_element(scores.begin(), scores.end());
    double sum = 0.0;
    for (std::size_t t = 0; t < n; ++t) sum += (w[t] = std::exp(scores[t] - top));
    std::fill(acc.begin(), acc.end(), 0.0);
    std::fill(allow.begin(), allow.end(), 0.0);
    float* probs = a->probs ? a->probs + static_cast<std::size_t>(h) * n : nullptr;
    for (std::size_t t = 0; t < n; ++t) {
      const double p = w[t] / sum;
      if (probs) probs[t] = static_cast<float>(p);
      if (int8_values && t < n_main) continue;
      for (std::size_t c = 0; c < hd; ++c) acc[c] += p * values[t * hd + c];
    }
    if (int8_values)
      for (std::int64_t i = 0; i < a->n_blocks; ++i)
        int8_block_values(a->blocks[i] + k_section, plan.value, head_dim, b,
                          scores.data() + static_cast<std::size_t>(i) * bs, top, 1.0 / sum, acc.data(), allow.data());
    for (std::size_t c = 0; c < hd; ++c) out[c] = static_cast<float>(acc[c]);
    if (allow_out)
      for (std::size_t c = 0; c < hd; ++c) allow_out[c] = static_cast<float>(allow[c]);
  }
}

}  // namespace kvc::reference
