#ifndef KVC_H
#define KVC_H
/* kvc runtime: a compressed, paged KV-cache store driven by a compiled plan.
 *
 * C99-compatible; the implementation is C++ (link with a C++ runtime, which the
 * shared libkvc does for you).
 *
 * Shapes (float = fp32, row-major):
 *   k, v   [n_tokens][kv_heads][head_dim]   keys AFTER RoPE
 *   q, out [q_heads][head_dim]              query AFTER RoPE; query head h reads KV
 *                                           head h / (q_heads / kv_heads) (GQA)
 *   window [n_q][q_heads][head_dim]         the last n_q prompt queries (SnapKV, CAKE)
 *
 * Life of a sequence, per layer: kvc_append() the prompt (any number of calls),
 * kvc_end_prefill() once, then per generated token kvc_append() its k/v and
 * kvc_attend() its query. Layers are independent except for a cross-layer basis
 * (below). A sequence never holds more than the plan's workload.context tokens
 * (appending past it is an error), and at most workload.batch sequences are alive.
 *
 * Storage (ir/layout.h is the byte model): per sequence, layer and KV head, the
 * newest tokens sit in an fp16 tail; older ones are quantized B at a time into
 * main blocks taken from a per-layer block pool sized for the whole batch
 * (main_block_capacity x kv_heads x batch) and allocated when the runtime is
 * created. Retention evicts whole blocks back to the pool; they are reused.
 * kvc_memory_stats() reports bytes exactly as the `estimate` pass computes them.
 *
 * Prefill staging: plans that need the whole prompt before compressing anything
 * (a per-sequence low-rank basis, SnapKV or CAKE selection) keep the appended
 * prompt in an fp16 staging area until kvc_end_prefill(); that transient workspace
 * is outside the plan's cache bytes and is freed by kvc_end_prefill().
 *
 * Low-rank keys and RoPE: keys are given post-RoPE and bases are bases of
 * post-RoPE keys (U [head_dim][rank], orthonormal columns), so a stored key is
 * k ~= U c and q . k ~= (U^T q) . c holds exactly for the rotated query; the
 * query is projected once per kvc_attend() call and no rotation happens inside
 * the store. Basis sources:
 *   - Prefill: the top-`rank` principal directions of the sequence's prompt keys,
 *     computed at kvc_end_prefill(). For a cross-layer group the basis of each KV
 *     head comes from the prompt keys of ALL layers of the group, concatenated in
 *     layer order; each layer's kvc_end_prefill() waits (its prompt stays staged)
 *     until every layer of the group has ended prefill, then the basis is computed
 *     and all layers of the group are compressed. Attending a layer of an
 *     unfinished group is an error.
 *   - Calibrated: shipped with the plan; set it with kvc_set_calibrated_basis()
 *     before the first token is compressed.
 *
 * Fork copies (plainly, not copy-on-write) every block, the tail, scores and basis
 * of the source into fresh pool slots; the two sequences are independent afterwards.
 *
 * Errors: every function returns a kvc_status; on failure nothing in the store has
 * changed, and kvc_last_error() returns a message (thread-local: it describes the
 * last failed call made by the calling thread).
 *
 * Handles: a NULL runtime is an error; a destroyed one must not be used again (as
 * with free(), that cannot be detected). Sequence ids are positive, and a runtime
 * gives an id out again only after 2^31 - 1 later creations: a freed or made-up id
 * is reported as an unknown sequence, not taken for another one. A call racing the
 * free of its sequence on another thread fails the same way.
 *
 * Thread safety: one runtime may be used from several threads at once as long as
 * each sequence is used by one thread at a time (calls on the same sequence from
 * two threads are serialised by a per-sequence lock, never corrupting it, but
 * their order is then unspecified). Sequence create/fork/free, kernel and basis
 * setting and stats are safe from any thread. kvc_attend() and kvc_attend_batch()
 * spread the KV heads (and sequences) over the runtime's own thread pool of
 * `threads` workers; results are bit-identical for any number of threads.
 *
 * Kernels (the spec's target.backend; choose it with kvc_runtime_create_with_config):
 *   - KVC_BACKEND_REFERENCE: the plain C++ reference kernels define the results.
 *   - KVC_BACKEND_LLVM_JIT: at creation the runtime JIT-compiles (LLVM ORC, this
 *     CPU) one attention kernel per distinct layer format of the plan and one
 *     quantize-on-append encoder per distinct storage format, and runs them. The
 *     encoders write exactly the reference's bytes; attention outputs agree with
 *     the reference to ~1e-6 of their norm (a different summation order).
 *   - KVC_BACKEND_LLVM_AOT: the host links the kernels `kvc compile --emit obj`
 *     wrote and installs each layer's with kvc_set_layer_kernel(); until it does,
 *     a layer runs the reference kernel. Blocks are encoded by the reference encoder.
 * kvc_runtime_create() and kvc_runtime_create_from_text() use the reference backend.
 * kvc_kernel_stats_get() reports the JIT compile time, kvc_layer_kernel_names()
 * what each layer runs.
 */
#include <stddef.h>
#include <stdint.h>

#include "kvc_kernel_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvc_status {
  KVC_OK = 0,
  KVC_ERROR_INVALID_ARGUMENT = 1, /* null pointer, unknown layer/sequence, bad size or value */
  KVC_ERROR_CAPACITY = 2,         /* past the plan's context, or more sequences than its batch */
  KVC_ERROR_STATE = 3,            /* call out of order (attend during prefill or before any append, end_prefill twice) */
  KVC_ERROR_PLAN = 4,             /* the plan file cannot be read or cannot be stored */
  KVC_ERROR_INTERNAL = 5          /* out of memory or a bug */
} kvc_status;

typedef struct kvc_runtime kvc_runtime;
typedef int32_t kvc_seq;

typedef struct kvc_runtime_options {
  int threads; /* worker threads for attention (the spec's target.threads); <= 1 = the calling thread only */
} kvc_runtime_options;

/* target.backend of the spec: kvc_backend_from_name("llvm-jit" | "llvm-aot" | "reference"). */
typedef enum kvc_backend {
  KVC_BACKEND_REFERENCE = 0,
  KVC_BACKEND_LLVM_JIT = 1,
  KVC_BACKEND_LLVM_AOT = 2
} kvc_backend;

/* Instruction set of JIT kernels; HOST = the best this CPU supports. */
typedef enum kvc_isa { KVC_ISA_HOST = 0, KVC_ISA_SCALAR = 1, KVC_ISA_AVX2 = 2, KVC_ISA_AVX512 = 3 } kvc_isa;

/* Creation options beyond kvc_runtime_options. Start from kvc_runtime_config_default():
 * `size` lets later versions append fields without breaking hosts built against this one. */
typedef struct kvc_runtime_config {
  uint32_t size;       /* sizeof(kvc_runtime_config) as the host was compiled */
  int32_t threads;     /* as kvc_runtime_options.threads */
  kvc_backend backend; /* which kernels run (see "Kernels" above) */
  kvc_isa isa;         /* LLVM_JIT only */
  /* LLVM_JIT only; the last field (hosts compiled with a `size` that ends before it
   * get 0). Nonzero: every layer whose keys are per-channel 8/4/2-bit codes at
   * full rank (head_dim a multiple of 4, token block a multiple of 16), or whose values are
   * per-token 8/4/2-bit codes (token block a multiple of 16), runs the int8-dot attention
   * kernel: per block the scaled query is quantized to int8 and dotted with the raw key
   * codes, and the softmax weights are rounded to 8 bits and dotted with the raw value
   * codes. Faster on CPUs with VNNI, approximate (the query's and the weights' rounding;
   * definition: backends/reference/int8_dot_attention.h); kvc_layer_kernel_names() shows
   * those kernels with an "_i8" suffix. Other layers and the append encoders are unchanged. Another backend with int8_dot set fails
   * with KVC_ERROR_INVALID_ARGUMENT. */
  int32_t int8_dot;
} kvc_runtime_config;

/* Which kernels a runtime runs and what compiling them cost. */
typedef struct kvc_kernel_stats {
  kvc_backend backend;
  int32_t attend_kernels; /* distinct JIT attention kernels (0 unless LLVM_JIT) */
  int32_t append_kernels; /* distinct JIT append encoders (0 unless LLVM_JIT) */
  int32_t host_layers;    /* layers running a kernel installed with kvc_set_layer_kernel() */
  int32_t host_appends;   /* layers running an encoder installed with kvc_set_layer_append() */
  double compile_ms;      /* wall time of the JIT compilation at creation */
} kvc_kernel_stats;

typedef struct kvc_model_info {
  int32_t layers, q_heads, kv_heads, head_dim;
  int64_t context; /* tokens per sequence at most */
  int64_t batch;   /* sequences alive at most */
} kvc_model_info;

typedef struct kvc_memory_stats {
  int64_t bytes_allocated; /* cache bytes the runtime holds: == estimate's total_bytes for the plan */
  int64_t bytes_live;      /* the share of the live sequences: estimate's total with batch = live sequences */
  int64_t bytes_used;      /* of bytes_live, what holds tokens now (occupied blocks and tail slots, scores, bases) */
  int64_t staging_bytes;   /* transient prefill staging (not cache bytes) */
  int64_t blocks_used;     /* main blocks in use, all layers */
  int64_t blocks_total;    /* main block slots, all layers */
  int32_t live_sequences;
} kvc_memory_stats;

/* The message of the calling thread's last failed call ("" if none). */
const char* kvc_last_error(void);
const char* kvc_status_name(kvc_status status);

/* `plan_path`: a plan file (IR text) or the folder `kvc compile -o DIR` wrote (DIR/plan.kvc).
 * `options` may be NULL (one thread). */
kvc_status kvc_runtime_create(const char* plan_path, const kvc_runtime_options* options, kvc_runtime** out);
/* The same from IR text in memory. */
kvc_status kvc_runtime_create_from_text(const char* plan_text, const kvc_runtime_options* options,
                                        kvc_runtime** out);
/* The spec's defaults: size set, one thread, KVC_BACKEND_LLVM_JIT, KVC_ISA_HOST, int8_dot 0. */
kvc_runtime_config kvc_runtime_config_default(void);
/* As kvc_runtime_create / kvc_runtime_create_from_text, with the backend of `config`
 * (NULL = kvc_runtime_config_default()). A plan the JIT cannot compile, or an isa this
 * CPU lacks, fails with KVC_ERROR_PLAN or KVC_ERROR_INVALID_ARGUMENT. */
kvc_status kvc_runtime_create_with_config(const char* plan_path, const kvc_runtime_config* config, kvc_runtime** out);
kvc_status kvc_runtime_create_from_text_with_config(const char* plan_text, const kvc_runtime_config* config,
                                                    kvc_runtime** out);
/* "llvm-jit", "llvm-aot", "reference" (the spec's target.backend) -> kvc_backend. */
kvc_status kvc_backend_from_name(const char* name, kvc_backend* out);
const char* kvc_backend_name(kvc_backend backend);
void kvc_runtime_destroy(kvc_runtime* rt);
kvc_status kvc_model_info_get(const kvc_runtime* rt, kvc_model_info* out);

kvc_status kvc_sequence_create(kvc_runtime* rt, kvc_seq* out);
kvc_status kvc_sequence_fork(kvc_runtime* rt, kvc_seq source, kvc_seq* out);
kvc_status kvc_sequence_free(kvc_runtime* rt, kvc_seq seq);

kvc_status kvc_append(kvc_runtime* rt, int32_t layer, kvc_seq seq, const float* k, const float* v, int64_t n_tokens);
/* window may be NULL with n_q = 0 for plans without SnapKV/CAKE; those need 1 <= n_q <= prompt tokens
 * (n_q = 0 for an empty prompt). */
kvc_status kvc_end_prefill(kvc_runtime* rt, int32_t layer, kvc_seq seq, const float* window, int64_t n_q);
kvc_status kvc_attend(kvc_runtime* rt, int32_t layer, kvc_seq seq, const float* q, float* out);
/* n_seqs sequences of one layer at once: q and out are [n_seqs][q_heads][head_dim]. */
kvc_status kvc_attend_batch(kvc_runtime* rt, int32_t layer, const kvc_seq* seqs, int32_t n_seqs, const float* q,
                            float* out);

/* Calibrated basis [head_dim][rank] of one KV head (for the whole batch; for a cross-layer
 * group, set it on any layer of the group). */
kvc_status kvc_set_calibrated_basis(kvc_runtime* rt, int32_t layer, int32_t kv_head, const float* basis);
/* Replaces the attention kernel of one layer (a JIT or AOT kernel generated for exactly that
 * layer's plan, see kvc_kernel_abi.h); NULL restores the runtime's own kernel (the JIT one
 * with KVC_BACKEND_LLVM_JIT, else the reference kernel). This is how KVC_BACKEND_LLVM_AOT
 * hosts install the linked kernels: kvc_kernels.h maps each layer to its symbol. */
kvc_status kvc_set_layer_kernel(kvc_runtime* rt, int32_t layer, kvc_attend_fn kernel);
/* Replaces the quantize-on-append encoder of one layer (kvc_kernel_abi.h: it must write the
 * reference's bytes for exactly that layer's formats, e.g. an AOT `kvc_append_*` symbol);
 * NULL restores the runtime's own encoder. Set it before the layer holds blocks. */
kvc_status kvc_set_layer_append(kvc_runtime* rt, int32_t layer, kvc_append_fn encoder);

kvc_status kvc_memory_stats_get(const kvc_runtime* rt, kvc_memory_stats* out);
kvc_status kvc_kernel_stats_get(const kvc_runtime* rt, kvc_kernel_stats* out);
/* The names of the attention kernel and the append encoder `layer` runs: a generated C
 * symbol (e.g. "kvc_attend_k4pc32_v2pt32_d128_g4_avx512", "kvc_append_k4pc32_v2pt32_d128_avx512"),
 * "reference", or "host" for one installed with kvc_set_layer_kernel() / kvc_set_layer_append(). The strings
 * live as long as the runtime. Either output may be NULL. */
kvc_status kvc_layer_kernel_names(const kvc_runtime* rt, int32_t layer, const char** attend, const char** append);

#ifdef __cplusplus
}
#endif

#endif /* KVC_H */
