// Every file in tests/frontend/bad_specs/ is a spec kvc must reject. Its first
// line says exactly how:  # expect: LINE:COL FIELD PHRASE
// (FIELD "-" when the error names no field; COL 0 never appears: every error
// must have a column). The test loads the file and checks all four.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frontend/spec.h"
#include "test_support/test_data.h"

namespace kvc::frontend {
namespace {

namespace fs = std::filesystem;

fs::path bad_specs_dir() { return fs::path(testing::source_dir()) / "tests" / "frontend" / "bad_specs"; }

std::vector<std::string> bad_spec_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(bad_specs_dir(), ec))
    if (e.path().extension() == ".yaml") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Expectation {
  int line = 0;
  int column = 0;
  std::string field;
  std::string phrase;
};

Expectation read_expectation(const fs::path& file) {
  std::ifstream in(file);
  std::string header;
  std::getline(in, header);
  const std::string tag = "# expect: ";
  EXPECT_EQ(header.rfind(tag, 0), 0u) << file << " must start with '" << tag << "LINE:COL FIELD PHRASE'";
  std::istringstream is(header.substr(std::min(header.size(), tag.size())));
  Expectation x;
  char colon = 0;
  is >> x.line >> colon >> x.column >> x.field;
  std::getline(is >> std::ws, x.phrase);
  if (x.field == "-") x.field.clear();
  return x;
}

class BadSpec : public ::testing::TestWithParam<std::string> {};

TEST_P(BadSpec, FailsAtTheExactPlaceWithAClearMessage) {
  const fs::path file = bad_specs_dir() / (GetParam() + ".yaml");
  const Expectation want = read_expectation(file);
  ASSERT_GT(want.line, 0);
  ASSERT_GT(want.column, 0);
  ASSERT_FALSE(want.phrase.empty());
  try {
    load_spec(file.string());
    FAIL() << file << " loaded, but it should fail with: " << want.phrase;
  } catch (const Error& e) {
    SCOPED_TRACE(e.what());
    EXPECT_FALSE(e.location().file.empty());
    EXPECT_EQ(e.location().line, want.line);
    EXPECT_EQ(e.location().column, want.column);
    EXPECT_EQ(e.field(), want.field);
    EXPECT_NE(e.message().find(want.phrase), std::string::npos) << "missing phrase: " << want.phrase;
    // One line the CLI can print as is.
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BadSpec, ::testing::ValuesIn(bad_spec_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(BadSpecs, AtLeastThirtyDistinctFixtures) { EXPECT_GE(bad_spec_names().size(), 30u); }

}  // namespace
}  // namespace kvc::frontend
