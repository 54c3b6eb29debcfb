#pragma once
// Which modules are legal plans. Every rule below follows from the storage model
// in ir/layout.h or from what a retention/low-rank method needs to run; a module
// that passes can be printed, estimated (ir/layout.h) and lowered to kernels.
//
// Module (field names are the ones of the text form, ir/printer.h):
//   model.layers    >= 1, and the module has exactly that many layers.
//   layer index     layers[i].index == i: layers are listed in order 0..L-1.
//   model.q_heads   >= 1 and a multiple of model.kv_heads (grouped-query attention).
//   model.kv_heads  >= 1.
//   model.head_dim  >= 1.
//   model.rope_theta  finite and > 0.
//   model.cache     a named dtype.
//   workload        context >= 1, batch >= 1, 0 <= generate < context, and the
//                   uncompressed cache, layers*batch*kv_heads*context*head_dim*4 bytes,
//                   fits in int64 (so byte counts of ir/layout.h cannot overflow for it).
//   budget.bytes    >= 0.
//
// Layer (messages read "layer 3: k.group: 24 is not one of 8, 16, 32, 64, 128"):
//   k.bits, v.bits  one of 16, 8, 4, 3, 2.
//   k.group, v.group  for a quantized tensor (bits < 16): one of 8, 16, 32, 64, 128,
//                   so that a group of packed codes fills whole bytes at every bit width.
//                   (At 16 bits axis and group are unused and not checked.)
//   k.axis, v.axis  a named axis. A per-token group must divide the channels it
//                   groups: head_dim for V, and for K the key dims (rank when low rank).
//   k.group/v.group when both K and V are quantized per channel they share the token
//                   block (ir/layout.h: token_block), so their groups must be equal.
//   residual        >= 0 and a multiple of the token block, so the tail flushes whole blocks.
//   keep            a named policy. full: budget 0. Others: budget >= max(1, tail
//                   capacity) (the tail is never evicted) and budget <= workload.context.
//   keep.sink, keep.window   streamingllm, h2o: both >= 0 and sink + window <= budget.
//   keep.window     snapkv, cake: the observation window is >= 1 query.
//   keep.pool       snapkv, cake: odd and >= 1 (1 = no pooling), so the pooling is centred.
//   keep.gamma      cake: finite and >= 0.
//   rank            0 exactly when rank.sharing is none; otherwise 1 <= rank <= head_dim.
//   rank.sharing, rank.source  named values.
//   rank.group      cross-layer: >= 0; layer and none: -1. All layers of one cross-layer
//                   group are adjacent and have the same rank and source as its first layer
//                   (they read one basis).
// Parameters a policy does not use (e.g. pool with h2o) are not checked.
#include <string>
#include <string_view>
#include <vector>

#include "ir/plan.h"

namespace kvc::ir {

struct Diagnostic {
  int layer = -1;     // position in Module::layers, or -1 for a module-level problem
  std::string field;  // text-form field: "k.group", "keep.budget", "model.kv_heads"
  std::string message;
  // "layer 3: k.group: 24 is not one of 8, 16, 32, 64, 128" / "model.kv_heads: ..."
  std::string to_string() const;
};

// Every rule broken: module fields first, then layer by layer, then cross-layer groups.
std::vector<Diagnostic> verify_module(const Module& m);

// Throws kvc::Error for the first problem (its field is "layer 3: k.group" or
// "model.kv_heads"; the message says how many more there are). `file`, when given,
// names the plan's source in the error.
void verify_or_throw(const Module& m, std::string_view file = {});

}  // namespace kvc::ir
