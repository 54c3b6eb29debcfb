#pragma once
// The textual form of a plan IR module: readable, diffable, one layer per line.
//
//   ; kvc plan v1
//   module "Llama-3.1-8B" {
//     model    layers=32 q_heads=32 kv_heads=8 head_dim=128 rope_theta=500000 cache=fp16
//     workload context=32768 batch=4 generate=512
//     budget   bytes=4294967296
//   }
//   layer 0: k=int4/per-channel/g32 v=int2/per-token/g32 residual=128 keep=streamingllm(budget=2048,sink=4,window=32) rank=none
//   layer 1: k=fp16 v=fp16 residual=0 keep=full rank=64/cross-layer(group=0,source=prefill)
//
// Every field of the Module is expressed, so parse_module(print_module(m)) == m
// for any module whose enums hold named values (ir/parser.h reads this form).
// The printer is canonical: one spelling per module, so printing a parsed
// printout reproduces it byte for byte. Short forms stand for default fields:
//
//   k=fp16 / v=fp16   16 bits with the tensor's default axis and group (K: per-channel/g32,
//                     V: per-token/g32); otherwise fp16/<axis>/g<group> or int<bits>/<axis>/g<group>.
//   keep=<policy>(..) the parameters the policy uses are always written (streamingllm, h2o:
//                     budget,sink,window; snapkv: budget,window,pool; cake: budget,window,gamma);
//                     any other nonzero parameter is written too; `keep=full` alone when all are 0.
//   rank=none         rank 0, sharing none, group -1, source prefill; otherwise
//                     rank=<rank>/<sharing>(group=<g>,source=<src>) where group is written for
//                     cross-layer or when it is not -1, and the parentheses are left out when empty.
//
// Doubles are written in the shortest form that reads back to the same bits
// (fixed notation for exponents -6..20, else scientific; inf, -inf, nan).
// The name is quoted: \" \\ \n \r \t, \xHH for other control bytes, DEL and bytes that
// are not part of well-formed UTF-8; well-formed UTF-8 is written as is.
#include <string>
#include <string_view>

#include "ir/plan.h"

namespace kvc::ir {

// The whole module. Throws kvc::Error if an enum field holds a value with no name.
std::string print_module(const Module& m);

// One layer line without its newline ("layer 3: k=... rank=none").
std::string print_layer(const LayerPlan& plan);

// Pieces of the form, shared with reports.
std::string format_exact_double(double v);
std::string quote_string(std::string_view s);

}  // namespace kvc::ir
