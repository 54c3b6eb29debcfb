#include "ir/parser.h"

#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <vector>

#include "support/diagnostics.h"
#include "support/text.h"

namespace kvc::ir {

namespace {

struct Token {
  enum Kind { Word, String, Punct, Newline, End } kind = End;
  std::string text;  // a word's characters, a string's decoded bytes, the punctuation character
  int line = 1;
  int column = 1;
};

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '+' || c == '.';
}

bool is_punct(char c) {
  return c == '{' || c == '}' || c == '(' || c == ')' || c == '=' || c == ',' || c == '/' || c == ':';
}

std::string printable_char(unsigned char c) {
  if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
  char hex[16];
  std::snprintf(hex, sizeof hex, "byte 0x%02X", c);
  return hex;
}

// Splits the text into words, strings, punctuation and newlines; drops blanks and comments.
class Lexer {
 public:
  Lexer(std::string_view text, const std::string& file) : text_(text), file_(file) {}

  Token next() {
    skip_blanks_and_comment();
    Token t;
    t.line = line_;
    t.column = column_;
    if (pos_ >= text_.size()) return t;
    const char c = text_[pos_];
    if (c == '\n') {
      t.kind = Token::Newline;
      ++pos_;
      ++line_;
      column_ = 1;
      return t;
    }
    if (is_word_char(c)) {
      t.kind = Token::Word;
      while (pos_ < text_.size() && is_word_char(text_[pos_])) t.text += take();
      return t;
    }
    if (is_punct(c)) {
      t.kind = Token::Punct;
      t.text = std::string(1, take());
      return t;
    }
    if (c == '"') {
      t.kind = Token::String;
      t.text = read_string(t);
      return t;
    }
    fail_here("unexpected character " + printable_char(static_cast<unsigned char>(c)));
  }

 private:
  [[noreturn]] void fail_here(const std::string& message) const { throw Error({file_, line_, column_}, "", message); }

  // Columns count code points: continuation bytes of UTF-8 do not start a new column.
  char take() {
    const char c = text_[pos_++];
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++column_;
    return c;
  }

  void skip_blanks_and_comment() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r')) take();
    if (pos_ < text_.size() && text_[pos_] == ';') {
      while (pos_ < text_.size() && text_[pos_] != '\n') take();
    }
  }

  int hex_digit(char c) const {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  std::string read_string(const Token& start) {
    take();  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= text_.size() || text_[pos_] == '\n') {
        throw Error({file_, start.line, start.column}, "", "unterminated string: expected a closing '\"' on this line");
      }
      const char c = text_[pos_];
      if (c == '"') {
        take();
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        fail_here("control character " + printable_char(static_cast<unsigned char>(c)) +
                  " in a string: write it as an escape such as \\t or \\x1F");
      }
      if (c != '\\') {
        out += take();
        continue;
      }
      const int esc_line = line_, esc_column = column_;
      take();
      const char e = pos_ < text_.size() ? text_[pos_] : '\0';
      switch (e) {
        case '"': out += '"'; take(); break;
        case '\\': out += '\\'; take(); break;
        case 'n': out += '\n'; take(); break;
        case 'r': out += '\r'; take(); break;
        case 't': out += '\t'; take(); break;
        case 'x': {
          take();
          const int hi = pos_ < text_.size() ? hex_digit(text_[pos_]) : -1;
          const int lo = pos_ + 1 < text_.size() ? hex_digit(text_[pos_ + 1]) : -1;
          if (hi < 0 || lo < 0) {
            throw Error({file_, esc_line, esc_column}, "", "expected two hex digits after \\x");
          }
          take();
          take();
          out += static_cast<char>(hi * 16 + lo);
          break;
        }
        default:
          throw Error({file_, esc_line, esc_column}, "",
                      "unknown escape in a string: expected one of \\\" \\\\ \\n \\r \\t \\xHH");
      }
    }
  }

  std::string_view text_;
  const std::string& file_;
  std::size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
};

// One `key=value` the caller accepts; `read` parses the value at the current token.
struct Attr {
  const char* key;
  std::function<void(const std::string& field)> read;
};

class Parser {
 public:
  Parser(std::string_view text, std::string file) : file_(std::move(file)), lex_(text, file_) { advance(); }

  Module parse() {
    Module m;
    bool have_module = false;
    int module_line = 0;
    while (true) {
      skip_newlines();
      if (tok_.kind == Token::End) break;
      if (is_word("module")) {
        if (have_module) {
          fail(tok_, "", "a file holds one module; the first began at line " + std::to_string(module_line));
        }
        module_line = tok_.line;
        parse_module_block(m);
        have_module = true;
      } else if (is_word("layer")) {
        if (!have_module) fail(tok_, "", "expected the module header 'module \"name\" {' before the first layer");
        m.layers.push_back(parse_layer_line());
      } else {
        fail(tok_, "", std::string("expected '") + (have_module ? "layer" : "module") + "', found " + describe(tok_));
      }
    }
    if (!have_module) fail(tok_, "", "expected the module header 'module \"name\" {', found end of file");
    return m;
  }

 private:
  void advance() { tok_ = lex_.next(); }

  [[noreturn]] void fail(const Token& at, const std::string& field, const std::string& message) const {
    throw Error({file_, at.line, at.column}, field, message);
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Token::Word: return "'" + t.text + "'";
      case Token::String: return "a string";
      case Token::Punct: return "'" + t.text + "'";
      case Token::Newline: return "end of line";
      case Token::End: return "end of file";
    }
    return "?";
  }

  bool is_word(std::string_view w) const { return tok_.kind == Token::Word && tok_.text == w; }
  bool is_punct(char c) const { return tok_.kind == Token::Punct && tok_.text[0] == c; }
  bool at_line_end() const { return tok_.kind == Token::Newline || tok_.kind == Token::End; }

  void skip_newlines() {
    while (tok_.kind == Token::Newline) advance();
  }

  void expect_punct(char c, const std::string& field, const std::string& context) {
    if (!is_punct(c)) fail(tok_, field, std::string("expected '") + c + "' " + context + ", found " + describe(tok_));
    advance();
  }

  void expect_line_end(const std::string& field, const std::string& context) {
    if (!at_line_end()) {
      fail(tok_, field, "expected end of line" + (context.empty() ? "" : " " + context) + ", found " + describe(tok_));
    }
    if (tok_.kind == Token::Newline) advance();
  }

  // The current word, consumed; `what` says what was expected when it is not a word.
  Token take_word(const std::string& field, const std::string& what) {
    if (tok_.kind != Token::Word) fail(tok_, field, "expected " + what + ", found " + describe(tok_));
    Token t = tok_;
    advance();
    return t;
  }

  template <typename Int>
  Int parse_int_text(const Token& at, std::string_view text, const std::string& field, const std::string& what) {
    Int value{};
    const auto res = std::from_chars(text.data(), text.data() + text.size(), value);
    if (res.ec == std::errc::result_out_of_range && res.ptr == text.data() + text.size()) {
      fail(at, field,
           std::string(text) + " is out of range for a " + std::to_string(sizeof(Int) * 8) + "-bit integer");
    }
    if (res.ec != std::errc() || res.ptr != text.data() + text.size() || text.empty()) {
      fail(at, field, "expected " + what + ", found '" + std::string(text) + "'");
    }
    return value;
  }

  template <typename Int>
  Int read_int(const std::string& field) {
    const Token t = take_word(field, "an integer");
    return parse_int_text<Int>(t, t.text, field, "an integer");
  }

  double read_double(const std::string& field) {
    const Token t = take_word(field, "a number");
    double value = 0;
    const char* first = t.text.data();
    const char* last = first + t.text.size();
    const auto res = std::from_chars(first, last, value, std::chars_format::general);
    if (res.ec == std::errc::result_out_of_range && res.ptr == last) {
      fail(t, field, t.text + " is out of the range of a double");
    }
    if (res.ec != std::errc() || res.ptr != last) fail(t, field, "expected a number, found '" + t.text + "'");
    return value;
  }

  template <typename E>
  E read_enum(const std::string& field, std::initializer_list<E> values) {
    const Token t = take_word(field, "a name");
    std::vector<std::string> names;
    for (E v : values) {
      if (t.text == to_string(v)) return v;
      names.emplace_back(to_string(v));
    }
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    std::string message = "expected one of " + list + "; found '" + t.text + "'";
    if (auto near = closest_match(t.text, names)) message += " (did you mean '" + *near + "'?)";
    fail(t, field, message);
  }

  // "layer 3: " -> "layer 3", "keep." -> "keep": the field that a parameter list belongs to.
  static std::string owner_field(std::string prefix) {
    while (!prefix.empty() && (prefix.back() == ' ' || prefix.back() == ':' || prefix.back() == '.')) prefix.pop_back();
    return prefix;
  }

  // `key=value ...` up to the end of the line (in_parens false) or `(key=value,...)`.
  // Keys at top level are all required; in parentheses they may be left out.
  void parse_attrs(const std::vector<Attr>& attrs, const std::string& prefix, bool in_parens) {
    std::vector<bool> seen(attrs.size(), false);
    std::vector<std::string> keys;
    for (const Attr& a : attrs) keys.emplace_back(a.key);
    const auto key_list = [&] {
      std::string list;
      for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
      return list;
    };
    if (in_parens) advance();  // '('
    while (in_parens || !at_line_end()) {
      const Token key = take_word(owner_field(prefix), "a parameter name (" + key_list() + ")");
      std::size_t i = 0;
      while (i < attrs.size() && key.text != attrs[i].key) ++i;
      const std::string field = prefix + key.text;
      if (i == attrs.size()) {
        std::string message = "unknown parameter '" + key.text + "'; expected one of " + key_list();
        if (auto near = closest_match(key.text, keys)) message += " (did you mean '" + *near + "'?)";
        fail(key, field, message);
      }
      if (seen[i]) fail(key, field, "'" + key.text + "' is given twice");
      seen[i] = true;
      expect_punct('=', field, "after '" + key.text + "'");
      attrs[i].read(field);
      if (in_parens) {
        if (is_punct(')')) {
          advance();
          return;
        }
        expect_punct(',', field, "or ')' after the value of '" + key.text + "'");
      }
    }
    for (std::size_t i = 0; i < attrs.size(); ++i) {
      if (!seen[i]) fail(tok_, prefix + attrs[i].key, std::string("missing '") + attrs[i].key + "=' on this line");
    }
    expect_line_end(owner_field(prefix), "");
  }

  void parse_module_block(Module& m) {
    advance();  // 'module'
    if (tok_.kind != Token::String) fail(tok_, "module", "expected the model name as a quoted string, found " + describe(tok_));
    m.model.name = tok_.text;
    advance();
    const Token open = tok_;
    expect_punct('{', "module", "after the module name");
    expect_line_end("module", "after '{'");
    bool seen_model = false, seen_workload = false, seen_budget = false;
    while (true) {
      skip_newlines();
      if (tok_.kind == Token::End) {
        fail(tok_, "module", "expected '}' closing the module block opened at line " + std::to_string(open.line) +
                                 ", found end of file");
      }
      if (is_punct('}')) {
        if (!seen_model || !seen_workload || !seen_budget) {
          const char* missing = !seen_model ? "model" : !seen_workload ? "workload" : "budget";
          fail(tok_, missing, std::string("missing the '") + missing + "' line in the module block");
        }
        advance();
        expect_line_end("module", "after '}'");
        return;
      }
      const Token head = take_word("module", "'model', 'workload', 'budget' or '}'");
      const auto once = [&](bool& seen) {
        if (seen) fail(head, head.text, "the '" + head.text + "' line is given twice");
        seen = true;
      };
      if (head.text == "model") {
        once(seen_model);
        ModelShape& s = m.model;
        parse_attrs({{"layers", [&](const std::string& f) { s.layers = read_int<int>(f); }},
                     {"q_heads", [&](const std::string& f) { s.q_heads = read_int<int>(f); }},
                     {"kv_heads", [&](const std::string& f) { s.kv_heads = read_int<int>(f); }},
                     {"head_dim", [&](const std::string& f) { s.head_dim = read_int<int>(f); }},
                     {"rope_theta", [&](const std::string& f) { s.rope_theta = read_double(f); }},
                     {"cache", [&](const std::string& f) {
                        s.cache_dtype = read_enum(f, {DType::F16, DType::BF16, DType::F32});
                      }}},
                    "model.", false);
      } else if (head.text == "workload") {
        once(seen_workload);
        Workload& w = m.workload;
        parse_attrs({{"context", [&](const std::string& f) { w.context = read_int<std::int64_t>(f); }},
                     {"batch", [&](const std::string& f) { w.batch = read_int<std::int64_t>(f); }},
                     {"generate", [&](const std::string& f) { w.generate = read_int<std::int64_t>(f); }}},
                    "workload.", false);
      } else if (head.text == "budget") {
        once(seen_budget);
        parse_attrs({{"bytes", [&](const std::string& f) { m.budget_bytes = read_int<std::int64_t>(f); }}},
                    "budget.", false);
      } else {
        std::string message = "expected 'model', 'workload', 'budget' or '}', found '" + head.text + "'";
        if (auto near = closest_match(head.text, {"model", "workload", "budget"})) {
          message += " (did you mean '" + *near + "'?)";
        }
        fail(head, "module", message);
      }
    }
  }

  // fp16 | fp16/<axis>/g<group>[/<scheme>[/<rotation>(seed=<n>)]] | int<bits>/<axis>/g<group>[...]
  QuantFormat read_quant(const std::string& field, const QuantFormat& defaults) {
    const Token t = take_word(field, "a format such as fp16 or int4/per-channel/g32");
    QuantFormat f = defaults;
    if (t.text == "fp16") {
      f.bits = 16;
      if (!is_punct('/')) return f;
    } else if (t.text.rfind("int", 0) == 0) {
      f.bits = parse_int_text<int>(t, std::string_view(t.text).substr(3), field + ".bits",
                                   "a bit width after 'int' (int8, int4, int3, int2)");
      if (!is_punct('/')) {
        fail(tok_, field, "expected '/' and the quantization axis after '" + t.text + "', found " + describe(tok_));
      }
    } else {
      fail(t, field, "expected fp16 or int<bits> (int8, int4, int3, int2), found '" + t.text + "'");
    }
    advance();  // '/'
    f.axis = read_enum(field + ".axis", {QuantAxis::PerChannel, QuantAxis::PerToken});
    expect_punct('/', field, "and the group size (such as g32) after the axis");
    const Token g = take_word(field + ".group", "a group size such as g32");
    if (g.text.empty() || g.text[0] != 'g') fail(g, field + ".group", "expected a group size such as g32, found '" + g.text + "'");
    f.group = parse_int_text<int>(g, std::string_view(g.text).substr(1), field + ".group", "a group size such as g32");
    if (!is_punct('/')) return f;
    advance();
    f.scheme = read_enum(field + ".scheme", {QuantScheme::MinMax, QuantScheme::Symmetric, QuantScheme::LloydMax});
    if (!is_punct('/')) return f;
    advance();
    f.rotation = read_enum(field + ".rotation", {Rotation::None, Rotation::Hadamard});
    if (!is_punct('(')) return f;
    parse_attrs({{"seed", [&](const std::string& fld) { f.seed = read_int<std::uint32_t>(fld); }}},
                field + ".rotation.", true);
    return f;
  }

  Retention read_retention(const std::string& field) {
    Retention r;
    r.policy = read_enum(field, {RetentionPolicy::Full, RetentionPolicy::StreamingLLM, RetentionPolicy::H2O,
                                 RetentionPolicy::SnapKV, RetentionPolicy::CAKE});
    if (!is_punct('(')) return r;
    parse_attrs({{"budget", [&](const std::string& f) { r.budget = read_int<std::int64_t>(f); }},
                 {"sink", [&](const std::string& f) { r.sink = read_int<int>(f); }},
                 {"window", [&](const std::string& f) { r.window = read_int<int>(f); }},
                 {"pool", [&](const std::string& f) { r.pool = read_int<int>(f); }},
                 {"gamma", [&](const std::string& f) { r.gamma = read_double(f); }}},
                field + ".", true);
    return r;
  }

  // none | <rank>/<sharing>[(group=<g>,source=<src>)]
  LowRank read_lowrank(const std::string& field) {
    LowRank lr;
    if (is_word("none")) {
      advance();
      return lr;
    }
    const Token t = take_word(field, "'none' or <rank>/<sharing> such as 64/layer");
    lr.rank = parse_int_text<int>(t, t.text, field, "'none' or <rank>/<sharing> such as 64/layer");
    expect_punct('/', field + ".sharing", "and the basis sharing (none, layer, cross-layer) after the rank");
    lr.sharing = read_enum(field + ".sharing", {BasisSharing::None, BasisSharing::PerLayer, BasisSharing::CrossLayer});
    if (!is_punct('(')) return lr;
    parse_attrs({{"group", [&](const std::string& f) { lr.basis_group = read_int<int>(f); }},
                 {"source", [&](const std::string& f) {
                    lr.source = read_enum(f, {BasisSource::Prefill, BasisSource::Calibrated});
                  }}},
                field + ".", true);
    return lr;
  }

  LayerPlan parse_layer_line() {
    advance();  // 'layer'
    LayerPlan p;
    p.index = read_int<int>("layer");
    const std::string prefix = "layer " + std::to_string(p.index) + ": ";
    expect_punct(':', "layer", "after the layer index");
    const LayerPlan defaults;
    parse_attrs({{"k", [&](const std::string& f) { p.key = read_quant(f, defaults.key); }},
                 {"v", [&](const std::string& f) { p.value = read_quant(f, defaults.value); }},
                 {"residual", [&](const std::string& f) { p.residual = read_int<int>(f); }},
                 {"keep", [&](const std::string& f) { p.retention = read_retention(f); }},
                 {"rank", [&](const std::string& f) { p.lowrank = read_lowrank(f); }}},
                prefix, false);
    return p;
  }

  std::string file_;
  Lexer lex_;
  Token tok_;
};

}  // namespace

Module parse_module(std::string_view text, std::string_view filename) {
  return Parser(text, std::string(filename)).parse();
}

Module read_module_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error({path, 0, 0}, "", "cannot open the plan file for reading");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw Error({path, 0, 0}, "", "cannot read the plan file");
  return parse_module(buf.str(), path);
}

}  // namespace kvc::ir
