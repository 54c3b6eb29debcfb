#include "frontend/yaml_documents.h"

#include <sstream>

#include <yaml-cpp/eventhandler.h>

namespace kvc::frontend::yaml {
namespace {

// Sees only where each document starts. Every document the parser finishes has
// consumed at least its first token, so two documents starting at the same byte
// mean the parser is no longer moving.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    stuck_ = documents_ > 0 && mark.pos == last_.pos;
    last_ = mark;
    ++documents_;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  bool stuck() const { return stuck_; }
  const YAML::Mark& last() const { return last_; }

 private:
  int documents_ = 0;
  bool stuck_ = false;
  YAML::Mark last_;
};

}  // namespace

std::vector<YAML::Node> load_documents(const std::string& text) {
  // A first pass over the events alone: cheap, and it ends on every input.
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  while (parser.HandleNextDocument(starts))
    if (starts.stuck()) throw YAML::ParserException(starts.last(), "no YAML node can start here");
  // The same parser on the same text takes the same path, so this ends too.
  return YAML::LoadAll(text);
}

}  // namespace kvc::frontend::yaml
