/* kvc_host PLAN: drives the kvc runtime like a decoder would. For every layer it
 * appends a prompt of synthetic post-RoPE keys/values, ends the prefill with the
 * last prompt queries as the observation window, then decodes a few tokens
 * (append + attend per layer), forks the sequence, checks a bad call is refused,
 * and prints the cache's memory statistics. Exits 0 when everything worked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvc.h"

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static float next_uniform(void) { /* xorshift64*, in [-1, 1) */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (float)((double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill(float* x, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) x[i] = next_uniform();
}

#define CHECK(call)                                                                        \
  do {                                                                                     \
    kvc_status s_ = (call);                                                                \
    if (s_ != KVC_OK) {                                                                    \
      fprintf(stderr, "%s failed: %s: %s\n", #call, kvc_status_name(s_), kvc_last_error()); \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

int main(int argc, char** argv) {
  kvc_runtime_options options;
  kvc_runtime* rt = NULL;
  kvc_model_info info;
  kvc_memory_stats stats;
  kvc_seq seq, fork;
  float *k, *v, *q, *out, *window;
  size_t kv_row, q_row, i;
  int64_t prompt, n_q, step;
  int32_t layer;
  kvc_status bad;

  if (argc != 2) {
    fprintf(stderr, "usage: %s PLAN (a plan file, or the folder kvc compile -o wrote)\n", argv[0]);
    return 2;
  }
  options.threads = 2;
  CHECK(kvc_runtime_create(argv[1], &options, &rt));
  CHECK(kvc_model_info_get(rt, &info));
  printf("plan: %d layers, %d query heads, %d KV heads, head_dim %d, context %lld, batch %lld\n", info.layers,
         info.q_heads, info.kv_heads, info.head_dim, (long long)info.context, (long long)info.batch);

  kv_row = (size_t)info.kv_heads * (size_t)info.head_dim;
  q_row = (size_t)info.q_heads * (size_t)info.head_dim;
  prompt = info.context / 2 < 100 ? info.context / 2 : 100;
  n_q = prompt < 8 ? prompt : 8;
  k = malloc(sizeof(float) * kv_row * (size_t)prompt);
  v = malloc(sizeof(float) * kv_row * (size_t)prompt);
  window = malloc(sizeof(float) * q_row * (size_t)n_q);
  q = malloc(sizeof(float) * q_row);
  out = malloc(sizeof(float) * q_row);
  if (!k || !v || !window || !q || !out) return 1;

  CHECK(kvc_sequence_create(rt, &seq));
  for (layer = 0; layer < info.layers; ++layer) {
    fill(k, kv_row * (size_t)prompt);
    fill(v, kv_row * (size_t)prompt);
    fill(window, q_row * (size_t)n_q);
    CHECK(kvc_append(rt, layer, seq, k, v, prompt));
    CHECK(kvc_end_prefill(rt, layer, seq, window, n_q));
  }
  for (step = 0; step < 8 && prompt + step < info.context; ++step) {
    for (layer = 0; layer < info.layers; ++layer) {
      fill(k, kv_row);
      fill(v, kv_row);
      fill(q, q_row);
      CHECK(kvc_append(rt, layer, seq, k, v, 1));
      CHECK(kvc_attend(rt, layer, seq, q, out));
      for (i = 0; i < q_row; ++i)
        if (!isfinite(out[i])) {
          fprintf(stderr, "non-finite attention output\n");
          return 1;
        }
    }
  }
  if (info.batch > 1) {
    CHECK(kvc_sequence_fork(rt, seq, &fork));
    CHECK(kvc_attend(rt, 0, fork, q, out));
    CHECK(kvc_sequence_free(rt, fork));
  }

  bad = kvc_append(rt, info.layers, seq, k, v, 1);
  if (bad == KVC_OK) {
    fprintf(stderr, "appending to an unknown layer was accepted\n");
    return 1;
  }
  printf("refused as expected: %s: %s\n", kvc_status_name(bad), kvc_last_error());

  CHECK(kvc_memory_stats_get(rt, &stats));
  printf("cache bytes: allocated %lld, live %lld, used %lld; blocks %lld of %lld\n", (long long)stats.bytes_allocated,
         (long long)stats.bytes_live, (long long)stats.bytes_used, (long long)stats.blocks_used,
         (long long)stats.blocks_total);
  CHECK(kvc_sequence_free(rt, seq));
  kvc_runtime_destroy(rt);
  free(k);
  free(v);
  free(window);
  free(q);
  free(out);
  printf("kvc_host: ok\n");
  return 0;
}
