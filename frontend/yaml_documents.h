#pragma once
// The documents of a YAML stream, as YAML::LoadAll reads them, but safe on every
// input: a stream the parser cannot advance through is a YAML::ParserException
// at the token it is stuck on.
//
// yaml-cpp 0.7 (Debian 12) loops forever in LoadAll, allocating a null document
// per turn, when a document starts with a token no node can start with (a lone
// ',': jbeder/yaml-cpp#1040; LoadAll stops since yaml-cpp PR #1319). Found by
// fuzz/spec.cpp; the spec reader must fail on such a file, not eat the memory.
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace kvc::frontend::yaml {

std::vector<YAML::Node> load_documents(const std::string& text);

}  // namespace kvc::frontend::yaml
