#pragma once
// The kernel spec: everything a decode-attention kernel is specialised on.
//
// A LayerPlan says how a layer's cache is stored; the kernel that reads it only
// needs the parts that change its code: the shape of one call (head_dim, the g
// query heads of a GQA group), the key and value formats, the dims keys are
// stored at (low rank), the token block and the instruction set. Retention and
// the residual length change only how many blocks and tail tokens a call gets,
// which are run-time arguments (backends/kernel_abi.h). Layers with equal specs
// share one kernel, so a module needs one kernel per distinct spec.
#include <cstdint>
#include <string>
#include <vector>

#include "ir/plan.h"

namespace kvc::ir {

// Which vector instruction set a kernel is generated for. Host picks the best
// one the running CPU supports when the kernel is compiled.
enum class KernelIsa : std::uint8_t { Host, Scalar, Avx2, Avx512 };

struct KernelSpec {
  int head_dim = 0;
  int g = 1;  // query heads per KV head
  QuantFormat key{16, QuantAxis::PerChannel, 32};
  QuantFormat value{16, QuantAxis::PerToken, 32};
  bool lowrank = false;  // keys stored as coefficients in a [head_dim][key_dims] basis
  int key_dims = 0;      // rank when lowrank, else head_dim
  int token_block = 1;   // B: tokens per main block (ir::token_block)
  KernelIsa isa = KernelIsa::Host;
  // Main blocks as integer dot products, each tensor where its format admits it
  // (int8_dot_keys / int8_dot_values below):
  //  - keys: per block and query head the scaled query (q_c / sqrt(d)) * s_c is
  //    quantized to int8 (symmetric, scale max|.|/127, round half to even) and
  //    dotted with the raw per-channel key codes;
  //  - values: per block, head and value group the softmax weights times the
  //    tokens' scales are quantized to unsigned integers (scale max/255, or
  //    max/127 for 8-bit codes) and dotted with the raw per-token value codes.
  // AVX-512 VNNI vpdpbusd where the CPU has it. Changes numerics; the definition
  // is backends/reference/int8_dot_attention.h. Only legal where
  // supports_int8_dot(spec) holds.
  bool int8_dot = false;
  bool operator==(const KernelSpec&) const = default;
};

// Whether the int8-dot option applies to a spec (ignoring its int8_dot field):
// int8_dot_keys(spec) || int8_dot_values(spec).
bool supports_int8_dot(const KernelSpec& spec);
// Keys per channel at 8, 4 or 2 bits, at full rank, a multiple of 4 channels and
// a token block that is a multiple of 16.
bool int8_dot_keys(const KernelSpec& spec);
// Values per token at 8, 4 or 2 bits with keys at full rank, a token block that is
// a multiple of 16, and groups of 4, 8 or a multiple of 16 code bytes per token
// (group * bits / 8): a kernel step dots 16 (or the group's 4 or 8) code bytes of
// one group for 4 (or 16, 8) tokens at once.
bool int8_dot_values(const KernelSpec& spec);

const char* to_string(KernelIsa);
// Parses "host", "scalar", "avx2", "avx512"; throws kvc::Error otherwise.
KernelIsa parse_kernel_isa(const std::string& text);

// Throws kvc::Error naming the field when the spec cannot be compiled.
void validate(const KernelSpec& spec);

// A stable 64-bit hash of every field (FNV-1a over a canonical encoding), used
// as the kernel cache key.
std::uint64_t hash(const KernelSpec& spec);

// The C symbol of the kernel, e.g. "kvc_attend_k4pc32_v2pt32_d128_g4_avx512";
// low-rank keys add "_r<rank>", the int8-dot option "_i8". The isa part is the one given (Host -> "host"),
// so resolve the isa before naming an AOT symbol.
std::string kernel_name(const KernelSpec& spec);

// The spec layer `layer` of `m` lowers to (isa = Host). Throws kvc::Error when
// the layer's plan has no kernel (bad shape or format).
KernelSpec lower_layer(const Module& m, int layer, KernelIsa isa = KernelIsa::Host);

// Every layer's spec and, per layer, the index of its spec in the distinct list.
struct LoweredKernels {
  std::vector<KernelSpec> specs;   // distinct, in order of first use
  std::vector<int> layer_kernel;   // layers -> index into specs
};
LoweredKernels lower_module(const Module& m, KernelIsa isa = KernelIsa::Host);

}  // namespace kvc::ir
