#pragma once
// stories260K.reference.json: greedy ids from BOS and logits at a few positions,
// from an independent fp32 llama2.c implementation.
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvc::testing {

struct ReferenceVectors {
  std::vector<int> tokens;                       // tokens[0] = BOS, then 64 greedy ids
  std::map<int, std::vector<float>> logits_at;  // position -> logits [vocab]
};

inline ReferenceVectors load_reference_vectors(const std::string& path) {
  std::ifstream f(path);
  const nlohmann::json j = nlohmann::json::parse(f);
  ReferenceVectors r;
  r.tokens = j.at("tokens").get<std::vector<int>>();
  for (const auto& [pos, logits] : j.at("logits_at_pos").items())
    r.logits_at[std::stoi(pos)] = logits.get<std::vector<float>>();
  return r;
}

}  // namespace kvc::testing
