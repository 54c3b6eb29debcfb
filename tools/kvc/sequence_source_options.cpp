#include "sequence_source_options.h"

namespace kvc::cli {

void add_sequence_source_options(CLI::App* cmd, calibration::SequenceSource& source, const std::string& prefix,
                                 const std::string& what) {
  auto* tokens = cmd->add_option("--" + prefix + "tokens", source.token_file,
                                 "Read the " + what + " from this file instead of sampling them: one sequence of "
                                 "token ids per line");
  auto* text = cmd->add_option("--" + prefix + "text", source.text_file,
                               "Read the " + what + " from this UTF-8 text instead of sampling them: each paragraph "
                               "(or line, when there is no blank line) a document, encoded with BOS by the model's "
                               "tokenizer, concatenated and cut into sequences of --length tokens");
  tokens->excludes(text);
  text->excludes(tokens);
  cmd->add_option("--" + prefix + "tokenizer", source.tokenizer_file,
                  "With --" + prefix + "text: a llama2.c tokenizer file (default: the model's own: a GGUF's "
                  "vocabulary, else tok<vocab>.bin or tokenizer.bin beside the model)")
      ->needs(text);
}

}  // namespace kvc::cli
