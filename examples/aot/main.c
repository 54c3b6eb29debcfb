/* kvc_aot DIR: a host that runs kvc's ahead-of-time kernels inside the kvc runtime.
 *
 * DIR is the folder `kvc compile SPEC --emit obj -o DIR` wrote: plan.kvc (read at
 * run time) and kernels.o + kvc_kernels.h (compiled into this program). Two
 * runtimes load the plan and get the same synthetic prompt and decode tokens:
 *   - the AOT runtime (KVC_BACKEND_LLVM_AOT): before anything is appended,
 *     kvc_set_layer_append() installs each layer's AOT encoder from the generated
 *     kvc_layer_appends table, so its blocks are written by AOT code; at each step
 *     kvc_set_layer_kernel() swaps in the layer's AOT attention kernel
 *     (kvc_layer_kernels), and NULL swaps the runtime's reference kernel back in;
 *   - a plain reference runtime: reference encoder, reference kernel.
 * Each decode step appends one token per layer and checks, for every layer:
 *   1. AOT encoder + AOT kernel against the reference runtime:
 *      |out_aot - out_ref| <= TOLERANCE * |out_ref|;
 *   2. the reference kernel over the AOT-encoded blocks gives the reference
 *      runtime's output bit for bit, so the AOT encoders wrote the reference's bytes.
 * When the plan allows two sequences, the two kernels of the AOT runtime attend two
 * identical forks, so scores that retention accumulates from attention are updated
 * once per step in each (as in the reference runtime). Exits 0 when every check passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvc.h"
#include "kvc_kernels.h"

#define TOLERANCE 1e-4
#define DECODE_STEPS 24

static unsigned long long rng_state = 0x2545F4914F6CDD1Dull;

static float next_uniform(void) { /* xorshift64*, in [-1, 1) */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (float)((double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = next_uniform();
}

#define CHECK(call)                                                                        \
  do {                                                                                     \
    kvc_status s_ = (call);                                                                \
    if (s_ != KVC_OK) {                                                                    \
      fprintf(stderr, "%s failed: %s: %s\n", #call, kvc_status_name(s_), kvc_last_error()); \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

/* The generated table must describe the plan the runtime loaded. */
static int kernels_match_plan(const kvc_model_info* info) {
  if (info->layers != KVC_NUM_LAYERS) {
    fprintf(stderr, "plan has %d layers, kvc_kernels.h %d: were they compiled from the same spec?\n", info->layers,
            KVC_NUM_LAYERS);
    return 0;
  }
  for (int layer = 0; layer < KVC_NUM_LAYERS; ++layer) {
    const kvc_layer_kernel* k = &kvc_layer_kernels[layer];
    if (k->head_dim != info->head_dim || k->g * info->kv_heads != info->q_heads) {
      fprintf(stderr, "layer %d: kernel for head_dim %d, g %d; plan has head_dim %d, %d/%d heads\n", layer,
              k->head_dim, k->g, info->head_dim, info->q_heads, info->kv_heads);
      return 0;
    }
  }
  return 1;
}

static double relative_error(const float* got, const float* want, size_t n) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(got[i])) return INFINITY;
    diff += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    norm += (double)want[i] * want[i];
  }
  return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR (the folder kvc compile --emit obj -o DIR wrote)\n", argv[0]);
    return 2;
  }
  kvc_runtime_config config = kvc_runtime_config_default();
  config.backend = KVC_BACKEND_LLVM_AOT;
  kvc_runtime* rt = NULL;
  CHECK(kvc_runtime_create_with_config(argv[1], &config, &rt));
  kvc_runtime_options options;
  memset(&options, 0, sizeof options);
  options.threads = 1;
  kvc_runtime* ref_rt = NULL;
  CHECK(kvc_runtime_create(argv[1], &options, &ref_rt));
  kvc_model_info info;
  CHECK(kvc_model_info_get(rt, &info));
  if (!kernels_match_plan(&info)) return 1;
  printf("plan: %d layers, %d query heads, %d KV heads, head_dim %d; %d AOT kernels, %d AOT append encoders\n",
         info.layers, info.q_heads, info.kv_heads, info.head_dim, KVC_NUM_KERNELS, KVC_NUM_APPENDS);
  /* Encoders must be in place before a layer holds blocks. */
  for (int32_t layer = 0; layer < info.layers; ++layer) {
    CHECK(kvc_set_layer_append(rt, layer, kvc_layer_appends[layer]));
    const char* append_name = NULL;
    CHECK(kvc_layer_kernel_names(rt, layer, NULL, &append_name));
    if (strcmp(append_name, "host") != 0) {
      fprintf(stderr, "layer %d: the runtime reports encoder '%s', not the installed one\n", layer, append_name);
      return 1;
    }
  }

  const size_t kv_row = (size_t)info.kv_heads * (size_t)info.head_dim;
  const size_t q_row = (size_t)info.q_heads * (size_t)info.head_dim;
  int64_t prompt = info.context - DECODE_STEPS;
  if (prompt > 300) prompt = 300; /* several blocks and a full residual window at the usual group sizes */
  if (prompt < 1) {
    fprintf(stderr, "the plan's context (%lld) is too short for the example\n", (long long)info.context);
    return 1;
  }
  const int64_t n_q = prompt < 8 ? prompt : 8;
  float* k = malloc(sizeof(float) * kv_row * (size_t)prompt);
  float* v = malloc(sizeof(float) * kv_row * (size_t)prompt);
  float* window = malloc(sizeof(float) * q_row * (size_t)n_q);
  float* q = malloc(sizeof(float) * q_row);
  float* out_aot = malloc(sizeof(float) * q_row);
  float* out_ref = malloc(sizeof(float) * q_row);
  float* out_pure = malloc(sizeof(float) * q_row);
  if (!k || !v || !window || !q || !out_aot || !out_ref || !out_pure) return 1;

  kvc_seq seq_aot, seq_ref, seq_pure;
  CHECK(kvc_sequence_create(rt, &seq_aot));
  CHECK(kvc_sequence_create(ref_rt, &seq_pure));
  for (int32_t layer = 0; layer < info.layers; ++layer) {
    fill(k, kv_row * (size_t)prompt);
    fill(v, kv_row * (size_t)prompt);
    fill(window, q_row * (size_t)n_q);
    CHECK(kvc_append(rt, layer, seq_aot, k, v, prompt));
    CHECK(kvc_end_prefill(rt, layer, seq_aot, window, n_q));
    CHECK(kvc_append(ref_rt, layer, seq_pure, k, v, prompt));
    CHECK(kvc_end_prefill(ref_rt, layer, seq_pure, window, n_q));
  }
  const int forked = info.batch >= 2;
  if (forked)
    CHECK(kvc_sequence_fork(rt, seq_aot, &seq_ref));
  else
    seq_ref = seq_aot; /* one sequence attended twice: fine for plans whose retention keeps no attention scores */

  double worst = 0;
  int checks = 0;
  for (int step = 0; step < DECODE_STEPS; ++step) {
    for (int32_t layer = 0; layer < info.layers; ++layer) {
      fill(k, kv_row);
      fill(v, kv_row);
      fill(q, q_row);
      CHECK(kvc_append(rt, layer, seq_aot, k, v, 1));
      if (forked) CHECK(kvc_append(rt, layer, seq_ref, k, v, 1));
      CHECK(kvc_append(ref_rt, layer, seq_pure, k, v, 1));
      CHECK(kvc_set_layer_kernel(rt, layer, kvc_layer_kernels[layer].attend));
      CHECK(kvc_attend(rt, layer, seq_aot, q, out_aot));
      CHECK(kvc_set_layer_kernel(rt, layer, NULL));
      CHECK(kvc_attend(rt, layer, seq_ref, q, out_ref));
      CHECK(kvc_attend(ref_rt, layer, seq_pure, q, out_pure));
      const double err = relative_error(out_aot, out_pure, q_row);
      if (!(err <= TOLERANCE)) {
        fprintf(stderr, "step %d layer %d: AOT and reference outputs differ by %g of the output norm\n", step, layer,
                err);
        return 1;
      }
      if (memcmp(out_ref, out_pure, sizeof(float) * q_row) != 0) {
        fprintf(stderr,
                "step %d layer %d: the reference kernel over AOT-encoded blocks differs from the reference runtime "
                "(by %g of the output norm): the AOT encoder wrote other bytes\n",
                step, layer, relative_error(out_ref, out_pure, q_row));
        return 1;
      }
      if (err > worst) worst = err;
      ++checks;
    }
  }
  printf("decode: %d steps x %d layers after a %lld-token prompt, %s; AOT vs reference kernel: "
         "max relative error %.3g (tolerance %g)\n",
         DECODE_STEPS, info.layers, (long long)prompt, forked ? "two forked sequences" : "one sequence", worst,
         TOLERANCE);
  printf("append: AOT encoders on %d layers; reference kernel over their blocks bit-identical to the reference "
         "runtime\n",
         info.layers);
  for (int i = 0; i < KVC_NUM_LAYERS; ++i)
    if (i == 0 || kvc_layer_kernels[i].attend != kvc_layer_kernels[i - 1].attend)
      printf("  layer %d: K%d/V%d bits, head_dim %d, g %d\n", i, kvc_layer_kernels[i].key_bits,
             kvc_layer_kernels[i].value_bits, kvc_layer_kernels[i].head_dim, kvc_layer_kernels[i].g);

  if (forked) CHECK(kvc_sequence_free(rt, seq_ref));
  CHECK(kvc_sequence_free(rt, seq_aot));
  CHECK(kvc_sequence_free(ref_rt, seq_pure));
  kvc_runtime_destroy(rt);
  kvc_runtime_destroy(ref_rt);
  free(k);
  free(v);
  free(window);
  free(q);
  free(out_aot);
  free(out_ref);
  free(out_pure);
  printf("kvc_aot: ok (%d checks)\n", checks);
  return 0;
}
