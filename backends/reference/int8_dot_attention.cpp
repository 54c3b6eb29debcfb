#include "backends/reference/int8_dot_attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/reference/quantize.h"
#include "ir/kernel_spec.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {
namespace {

void check_args(const ir::LayerPlan& plan, int head_dim, int g, const kvc_attend_args* a) {
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

}  // namespace

void int8_dot_reference_attend(const ir::LayerPlan& plan, int head_dim, int g, const kvc_attend_args* a) {
  check_args(plan, head_dim, g, a);
  const int b = ir::token_block(plan);
  const std::size_t hd = static_cast<std::size_t>(head_dim);
  const std::size_t n_main = static_cast<std::size_t>(a->n_blocks) * static_cast<std::size_t>(b);
  const std::size_t n_tail = static_cast<std::size_t>(a->n_tail);
  const std::size_t n = n_main + n_tail;

  // Values of every held token, dequantized once (keys of main blocks are read as codes).
  std::vector<float> main_k(n_main * hd), values(n * hd);
  for (std::int64_t i = 0; i < a->n_blocks; ++i) {
    if (!a->blocks[i]) throw Error("int8_dot_reference_attend: block pointer is null");
    const std::size_t first = static_cast<std::size_t>(i) * static_cast<std::size_t>(b);
    decode_block(plan, head_dim, a->blocks[i], main_k.data() + first * hd, values.data() + first * hd);
  }
  for (std::size_t i = 0; i < n_tail * hd; ++i) values[n_main * hd + i] = half_to_float(a->tail_v[i]);

  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> qs(hd);
  std::vector<double> scores(n), w(n), acc(hd);
  for (int h = 0; h < g; ++h) {
    const float* q = a->q + static_cast<std::size_t>(h) * hd;
    for (std::size_t c = 0; c < hd; ++c) qs[c] = q[c] * scale;
    for (std::int64_t i = 0; i < a->n_blocks; ++i)
      int8_block_scores(a->blocks[i], head_dim, b, plan.key.bits, qs,
                        scores.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(b));
    for (std::size_t t = 0; t < n_tail; ++t) {
      double s = 0.0;
      for (std::size_t c = 0; c < hd; ++c)
        s += static_cast<double>(qs[c]) * static_cast<double>(half_to_float(a->tail_k[t * hd + c]));
      scores[n_main + t] = s;
    }
    float* out = a->out + static_cast<std::size_t>(h) * hd;
    std::fill(out, out + hd, 0.0f);
    if (n == 0) continue;
    const double top = *std::max_element(scores.begin(), scores.end());
    double sum = 0.0;
    for (std::size_t t = 0; t < n; ++t) sum += (w[t] = std::exp(scores[t] - top));
    std::fill(acc.begin(), acc.end(), 0.0);
    float* probs = a->probs ? a->probs + static_cast<std::size_t>(h) * n : nullptr;
    for (std::size_t t = 0; t < n; ++t) {
      const double p = w[t] / sum;
      if (probs) probs[t] = static_cast<float>(p);
      for (std::size_t c = 0; c < hd; ++c) acc[c] += p * values[t * hd + c];
    }
    for (std::size_t c = 0; c < hd; ++c) out[c] = static_cast<float>(acc[c]);
  }
}

}  // namespace kvc::reference
