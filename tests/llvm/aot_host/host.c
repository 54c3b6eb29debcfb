/* A host program that links kvc's AOT kernels (kernels.o + kvc_kernels.h) with no
 * LLVM and no kvc library: reads per-layer inputs from a file, calls each layer's
 * kernel through the generated table, writes the outputs.
 * Usage: host INPUT OUTPUT. Input per layer (native endianness):
 *   int64 n_blocks, int64 block_bytes, n_blocks*block_bytes bytes,
 *   int64 n_tail, uint16 tail_k[n_tail*d], uint16 tail_v[n_tail*d],
 *   float q[g*d], int64 basis_floats, float basis[basis_floats]. */
#include <stdio.h>
#include <stdlib.h>

#include "kvc_kernels.h"

static void* read_n(FILE* f, size_t bytes) {
  void* p = malloc(bytes ? bytes : 1);
  if (!p || fread(p, 1, bytes, f) != bytes) {
    fprintf(stderr, "short input\n");
    exit(2);
  }
  return p;
}

static int64_t read_i64(FILE* f) {
  int64_t v;
  if (fread(&v, sizeof v, 1, f) != 1) {
    fprintf(stderr, "short input\n");
    exit(2);
  }
  return v;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  if (!in || !out) return 2;
  for (int layer = 0; layer < KVC_NUM_LAYERS; ++layer) {
    const kvc_layer_kernel* k = &kvc_layer_kernels[layer];
    const size_t d = (size_t)k->head_dim, g = (size_t)k->g;
    const int64_t n_blocks = read_i64(in), block_bytes = read_i64(in);
    uint8_t* bytes = read_n(in, (size_t)(n_blocks * block_bytes));
    const uint8_t** blocks = malloc(sizeof(uint8_t*) * (size_t)(n_blocks ? n_blocks : 1));
    for (int64_t b = 0; b < n_blocks; ++b) blocks[b] = bytes + b * block_bytes;
    const int64_t n_tail = read_i64(in);
    uint16_t* tail_k = read_n(in, (size_t)n_tail * d * 2);
    uint16_t* tail_v = read_n(in, (size_t)n_tail * d * 2);
    float* q = read_n(in, g * d * 4);
    const int64_t basis_n = read_i64(in);
    float* basis = read_n(in, (size_t)basis_n * 4);
    float* o = malloc(g * d * 4);
    kvc_attend_args a = {blocks, n_blocks, tail_k, tail_v, n_tail, q, basis_n ? basis : NULL, o, NULL};
    k->attend(&a);
    fwrite(o, 4, g * d, out);
    free(bytes), free(blocks), free(tail_k), free(tail_v), free(q), free(basis), free(o);
  }
  fclose(in);
  return fclose(out) == 0 ? 0 : 1;
}
