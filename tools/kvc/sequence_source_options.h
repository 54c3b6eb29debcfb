#pragma once
// The options that say where a command's sequences come from (--tokens, --text,
// --tokenizer), shared by `kvc calibrate`, `kvc eval` and `kvc sweep`.
#include <CLI/CLI.hpp>
#include <string>

#include "calibration/token_sequences.h"

namespace kvc::cli {

// `prefix` names the options ("" gives --text; "calibration-" gives
// --calibration-text); `what` says whose sequences they are, for --help.
void add_sequence_source_options(CLI::App* cmd, calibration::SequenceSource& source, const std::string& prefix,
                                 const std::string& what);

}  // namespace kvc::cli
