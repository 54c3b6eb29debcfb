#pragma once
// Reads the textual form written by ir/printer.h back into a Module.
//
// Grammar (whitespace between tokens is free; a newline ends a line; ';' starts a
// comment that runs to the end of the line; blank and comment-only lines are skipped):
//
//   file      := module-header layer-line*
//   module-header := 'module' STRING '{' NL header-line* '}' NL
//   header-line   := ('model' | 'workload' | 'budget') attr* NL      each exactly once
//   layer-line    := 'layer' INT ':' attr* NL
//   attr      := KEY '=' value
//
// Attributes may come in any order; each must appear exactly once (keep and rank
// parameters inside parentheses, separated by ',', may be left out and then take
// the LayerPlan defaults). The values are the ones print_module writes; see there.
// The parser checks syntax and ranges of the C++ types only (an int field must fit
// in 32 bits); whether a plan makes sense is the verifier's job (ir/verifier.h).
//
// Errors are kvc::Error with the file name, the 1-based line and column of the
// offending token (columns count Unicode code points), the field being read
// ("model.head_dim", "layer 3: keep.pool") and what was expected instead.
#include <string>
#include <string_view>

#include "ir/plan.h"

namespace kvc::ir {

Module parse_module(std::string_view text, std::string_view filename = "<input>");

// Reads a file and parses it; an unreadable file is a kvc::Error naming it.
Module read_module_file(const std::string& path);

}  // namespace kvc::ir
