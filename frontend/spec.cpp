#include "frontend/spec.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "frontend/model_file.h"
#include "frontend/spec_limits.h"
#include "frontend/spec_yaml.h"
#include "frontend/yaml_documents.h"
#include "ir/layout.h"
#include "ir/precision.h"
#include "support/text.h"

namespace kvc::frontend {

namespace fs = std::filesystem;
using yaml::Map;

namespace {

const std::vector<std::string> kTopKeys = {"kvc", "model", "workload", "budget", "calibration", "search", "target"};
const std::vector<std::string> kModelKeys = {"name", "from", "layers", "q_heads", "kv_heads", "head_dim", "rope", "cache_dtype"};
const std::vector<std::string> kRopeKeys = {"theta"};
const std::vector<std::string> kWorkloadKeys = {"context", "batch", "generate"};
const std::vector<std::string> kBudgetKeys = {"bytes", "ratio"};
const std::vector<std::string> kCalibrationKeys = {"stats"};
const std::vector<std::string> kSearchKeys = {"precision", "retention", "lowrank", "joint", "pipeline"};
const std::vector<std::string> kPrecisionKeys = {"method", "candidates", "group", "residual", "seed", "formats"};
const std::vector<std::string> kRetentionKeys = {"method", "sink", "window", "pool", "gamma"};
const std::vector<std::string> kLowRankKeys = {"method", "group_layers", "energy", "basis"};
const std::vector<std::string> kTargetKeys = {"backend", "cpu", "threads"};

const std::vector<std::string> kPrecisionMethods = {"none", "uniform", "kvtuner"};
const std::vector<std::string> kRetentionMethods = {"none", "streamingllm", "h2o", "snapkv", "cake", "prefixkv"};
const std::vector<std::string> kLowRankMethods = {"none", "xkv", "shadowkv"};
const std::vector<std::string> kBases = {"prefill", "calibrated"};
const std::vector<std::string> kBackends = {"llvm-jit", "llvm-aot", "reference"};
const std::vector<std::string> kDTypes = {"fp16", "bf16", "fp32"};
const std::vector<int> kGroups = {8, 16, 32, 64, 128};

// Sizes beyond these are typos, and keeping every product of them far from
// int64 overflow lets byte arithmetic stay plain.
constexpr std::int64_t kMaxShape = 1 << 16;
constexpr std::int64_t kMaxContext = std::int64_t{1} << 32;
constexpr std::int64_t kMaxBatch = 1 << 20;
// The largest cache kvc sizes with int64 bytes, with headroom for metadata.
constexpr double kMaxCacheBytes = 4.0e18;

ir::DType dtype_from(const std::string& s) {
  if (s == "bf16") return ir::DType::BF16;
  if (s == "fp32") return ir::DType::F32;
  return ir::DType::F16;
}

// yaml-cpp's messages name the symptom; these name the usual cause.
std::string syntax_hint(const std::string& msg) {
  if (msg.find("end of map flow not found") != std::string::npos) return " (a '{' above is never closed with '}')";
  if (msg.find("end of sequence flow not found") != std::string::npos) return " (a '[' above is never closed with ']')";
  if (msg.find("illegal tab") != std::string::npos) return " (indent with spaces; YAML does not allow tabs there)";
  return "";
}

class SpecParser {
 public:
  SpecParser(Spec& spec, const std::string& path)
      : s_(spec), r_(path, &spec.locations), base_(fs::path(path).parent_path()) {}

  void parse(const std::string& text) {
    const YAML::Node doc = load(text);
    if (!doc.IsDefined() || doc.IsNull() || (doc.IsScalar() && doc.Scalar().empty()))
      r_.fail(SourceLocation{r_.file(), 1, 1}, "", "the spec is empty; it needs at least kvc: 1, model, workload and budget");
    const Map root = r_.map(doc, "", r_.at(doc), kTopKeys);
    read_version(root);
    read_model(root);
    read_workload(root);
    read_calibration(root);
    read_search(root);
    read_target(root);
    read_budget(root);
  }

 private:
  YAML::Node load(const std::string& text) {
    std::vector<YAML::Node> docs;
    try {
      docs = yaml::load_documents(text);
    } catch (const YAML::Exception& e) {
      r_.fail(r_.at(e.mark), "", "YAML syntax error: " + e.msg + syntax_hint(e.msg));
    }
    if (docs.empty()) return YAML::Node();
    if (docs.size() > 1)
      r_.fail(second_document(text, docs[1]), "", "the file holds " + std::to_string(docs.size()) +
                                      " YAML documents (separated by ---); a spec is exactly one");
    return docs[0];
  }

  // Where the second document starts: its root's mark, or (for an empty
  // document, which has none) the last `---` line.
  SourceLocation second_document(const std::string& text, const YAML::Node& doc) const {
    if (const SourceLocation at = r_.at(doc); at.line > 0) return at;
    int line = 1, marker = 1;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if ((i == 0 || text[i - 1] == '\n') && text.compare(i, 3, "---") == 0) marker = line;
      if (text[i] == '\n') ++line;
    }
    return SourceLocation{r_.file(), marker, 1};
  }

  // A path written in the spec, resolved against the spec's folder; it must name a readable file.
  std::string existing_file(const Map& m, std::string_view key, const std::string& written, const char* what) {
    fs::path p(written);
    if (p.is_relative()) p = base_ / p;
    p = p.lexically_normal();
    std::error_code ec;
    const auto status = fs::status(p, ec);
    const std::string shown = "'" + written + "'" + (written == p.string() ? "" : " (resolved to '" + p.string() + "')");
    if (ec || !fs::exists(status))
      r_.fail(r_.value_location(m, key), m.child(key), std::string(what) + " not found: " + shown);
    if (!fs::is_regular_file(status))
      r_.fail(r_.value_location(m, key), m.child(key), std::string(what) + " is not a regular file: " + shown);
    if (!std::ifstream(p, std::ios::binary))
      r_.fail(r_.value_location(m, key), m.child(key), std::string(what) + " cannot be read: " + shown);
    return p.string();
  }

  void read_version(const Map& root) {
    const auto version = r_.integer(root, "kvc", INT64_MIN, INT64_MAX);
    if (!version) r_.missing(root, "kvc", "the schema version: write 'kvc: 1' as the first line");
    if (*version != 1)
      r_.fail(r_.value_location(root, "kvc"), "kvc",
              "unsupported schema version " + std::to_string(*version) + "; this kvc reads version 1");
    s_.version = 1;
  }

  void read_model(const Map& root) {
    const auto model = r_.section(root, "model", kModelKeys);
    if (!model) r_.missing(root, "model", "the attention shape inline, or from: a config.json, .gguf or llama2.c .bin");
    const Map& m = *model;

    std::optional<ModelFileInfo> info;
    if (auto from = r_.string(m, "from")) {
      s_.model_from = existing_file(m, "from", *from, "model file");
      info = read_info(m);
    }
    const auto layers = r_.integer(m, "layers", 1, kMaxShape);
    const auto q_heads = r_.integer(m, "q_heads", 1, kMaxShape);
    const auto kv_heads = r_.integer(m, "kv_heads", 1, kMaxShape);
    const auto head_dim = r_.integer(m, "head_dim", 1, kMaxShape);
    std::optional<double> theta;
    if (auto rope = r_.section(m, "rope", kRopeKeys)) {
      theta = r_.number(*rope, "theta");
      if (theta && !(*theta > 0)) r_.fail(r_.value_location(*rope, "theta"), "model.rope.theta", "must be positive");
    }
    const auto dtype = r_.choice(m, "cache_dtype", kDTypes);
    const auto name = r_.string(m, "name");

    ir::ModelShape& shape = s_.model;
    if (info) {
      // Shape fields written beside model.from must agree with the file: a spec
      // that silently overrides a checkpoint's shape would compile kernels for a
      // model that does not exist. name and cache_dtype are choices, not shape.
      shape = info->shape;
      s_.model_context = info->context;
      agree(m, "layers", layers, shape.layers);
      agree(m, "q_heads", q_heads, shape.q_heads);
      agree(m, "kv_heads", kv_heads, shape.kv_heads);
      agree(m, "head_dim", head_dim, shape.head_dim);
      if (theta && *theta != shape.rope_theta)
        r_.fail(s_.location_of("model.rope.theta"), "model.rope.theta",
                "rope theta " + number_text(*theta) + " disagrees with " + number_text(shape.rope_theta) +
                    " read from model.from; leave it out or make it match");
      if (shape.name.empty()) shape.name = fs::path(s_.model_from).stem().string();
      check_file_shape(m);
    } else {
      const char* hint = "give the shape inline or model.from: a config.json, .gguf or llama2.c .bin";
      if (!layers) r_.missing(m, "layers", hint);
      if (!q_heads) r_.missing(m, "q_heads", hint);
      if (!kv_heads) r_.missing(m, "kv_heads", hint);
      if (!head_dim) r_.missing(m, "head_dim", hint);
      shape.layers = static_cast<int>(*layers);
      shape.q_heads = static_cast<int>(*q_heads);
      shape.kv_heads = static_cast<int>(*kv_heads);
      shape.head_dim = static_cast<int>(*head_dim);
      if (theta) shape.rope_theta = *theta;
      shape.name = fs::path(r_.file()).stem().string();
      if (kv_heads && shape.q_heads % shape.kv_heads != 0)
        r_.fail(s_.location_of("model.kv_heads"), "model.kv_heads",
                "kv_heads " + std::to_string(shape.kv_heads) + " does not divide q_heads " +
                    std::to_string(shape.q_heads) + " (each KV head serves an equal group of query heads)");
      if (shape.head_dim % 2 != 0)
        r_.fail(s_.location_of("model.head_dim"), "model.head_dim",
                "head_dim " + std::to_string(shape.head_dim) + " is odd; RoPE rotates channels in pairs");
    }
    if (name) shape.name = *name;
    if (dtype) shape.cache_dtype = dtype_from(*dtype);
  }

  ModelFileInfo read_info(const Map& m) {
    const SourceLocation at = r_.value_location(m, "from");
    const std::string where = " (the model.from of " + r_.file() + ":" + std::to_string(at.line) + ")";
    try {
      return read_model_info(s_.model_from);
    } catch (const Error& e) {
      throw Error(e.location().file.empty() ? at : e.location(), e.location().file.empty() ? "model.from" : e.field(),
                  e.message() + where);
    } catch (const std::exception& e) {
      throw Error(at, "model.from", std::string("cannot read model file '") + s_.model_from + "': " + e.what());
    }
  }

  void agree(const Map& m, std::string_view key, const std::optional<std::int64_t>& written, int from_file) {
    if (!written || *written == from_file) return;
    const std::string field = m.child(key);
    r_.fail(r_.value_location(m, key), field,
            std::string(key) + " " + std::to_string(*written) + " disagrees with " + std::to_string(from_file) +
                " read from model.from; leave it out or make it match");
  }

  // The model readers validate their files; this guards against any reader that lets an impossible shape through.
  void check_file_shape(const Map& m) {
    const ir::ModelShape& sh = s_.model;
    const bool ok = sh.layers > 0 && sh.layers <= kMaxShape && sh.q_heads > 0 && sh.q_heads <= kMaxShape &&
                    sh.kv_heads > 0 && sh.kv_heads <= kMaxShape && sh.head_dim > 0 && sh.head_dim <= kMaxShape &&
                    sh.q_heads % sh.kv_heads == 0 && sh.head_dim % 2 == 0 && sh.rope_theta > 0;
    if (!ok)
      r_.fail(r_.value_location(m, "from"), "model.from",
              "the model file gives an impossible shape: layers " + std::to_string(sh.layers) + ", q_heads " +
                  std::to_string(sh.q_heads) + ", kv_heads " + std::to_string(sh.kv_heads) + ", head_dim " +
                  std::to_string(sh.head_dim));
  }

  static std::string number_text(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  }

  void read_workload(const Map& root) {
    const auto workload = r_.section(root, "workload", kWorkloadKeys);
    if (!workload) r_.missing(root, "workload", "context: tokens per sequence, batch:, generate:");
    const Map& w = *workload;
    const auto context = r_.integer(w, "context", 1, kMaxContext);
    if (!context) r_.missing(w, "context", "tokens each sequence's cache holds at most, prompt plus generated");
    s_.workload.context = *context;
    s_.workload.batch = r_.integer(w, "batch", 1, kMaxBatch).value_or(1);
    s_.workload.generate = r_.integer(w, "generate", 0, kMaxContext).value_or(0);
    if (s_.workload.generate >= s_.workload.context)
      r_.fail(s_.location_of("workload.generate"), "workload.generate",
              "generate " + std::to_string(s_.workload.generate) + " must be less than workload.context " +
                  std::to_string(s_.workload.context) + " (the context holds the prompt and the generated tokens)");
    if (s_.model_context > 0 && s_.workload.context > s_.model_context)
      r_.fail(s_.location_of("workload.context"), "workload.context",
              "context " + std::to_string(s_.workload.context) + " exceeds the " + std::to_string(s_.model_context) +
                  " positions the model from model.from was trained for");
    const double cache = static_cast<double>(s_.model.layers) * static_cast<double>(s_.workload.batch) *
                         s_.model.kv_heads * static_cast<double>(s_.workload.context) * s_.model.head_dim * 4.0;
    if (cache > kMaxCacheBytes)
      r_.fail(s_.location_of("workload.context"), "workload.context",
              "the fp16 cache of this model and workload would be " + number_text(cache) +
                  " bytes, more than kvc can address");
  }

  void read_calibration(const Map& root) {
    const auto calib = r_.section(root, "calibration", kCalibrationKeys);
    if (!calib) return;
    if (auto stats = r_.string(*calib, "stats")) s_.calibration_stats = existing_file(*calib, "stats", *stats, "calibration stats file");
  }

  void read_search(const Map& root) {
    const auto search = r_.section(root, "search", kSearchKeys);
    if (!search) {
      check_group_fits_head(std::nullopt);
      return;
    }
    read_precision(*search);
    read_retention(*search);
    read_lowrank(*search);
    if (auto joint = r_.boolean(*search, "joint")) s_.search.joint = *joint;
    if (auto pipeline = r_.string(*search, "pipeline")) {
      check_pipeline(*search, *pipeline);
      s_.search.pipeline = *pipeline;
    }
  }

  void read_precision(const Map& search) {
    PrecisionSearch& p = s_.search.precision;
    const auto m = r_.section(search, "precision", kPrecisionKeys);
    if (!m) {
      check_group_fits_head(std::nullopt);
      return;
    }
    if (auto method = r_.choice(*m, "method", kPrecisionMethods)) p.method = *method;
    if (auto group = r_.integer(*m, "group", 1, 1 << 20)) {
      bool ok = false;
      for (int g : kGroups) ok = ok || g == *group;
      if (!ok)
        r_.fail(r_.value_location(*m, "group"), "search.precision.group",
                "group " + std::to_string(*group) + " is not one of 8, 16, 32, 64, 128");
      p.group = static_cast<int>(*group);
    }
    check_group_fits_head(m);
    if (auto residual = r_.integer(*m, "residual", 0, kMaxContext)) {
      if (*residual % p.group != 0)
        r_.fail(r_.value_location(*m, "residual"), "search.precision.residual",
                "residual " + std::to_string(*residual) + " is not a multiple of the group " + std::to_string(p.group) +
                    " (the fp16 window is flushed a whole key group at a time)");
      p.residual = static_cast<int>(*residual);
    } else if (p.residual % p.group != 0) {
      p.residual = p.group;
    }
    if (auto seed = r_.integer(*m, "seed", 0, UINT32_MAX)) p.seed = static_cast<std::uint32_t>(*seed);
    if (auto formats = r_.strings(*m, "formats")) {
      for (std::size_t i = 0; i < formats->size(); ++i) {
        const auto& [family, loc] = (*formats)[i];
        const std::string field = "search.precision.formats[" + std::to_string(i) + "]";
        std::string problem;
        const auto side = ir::family_side(family, 4, &problem);
        if (!side) r_.fail(loc, field, "'" + family + "' is not a format family (" + problem + "): write kivi, or the letters of a pair side such as t, tr, cr, a, r, crg16");
        if (const std::string why = ir::side_problem(*side, s_.model.head_dim); !why.empty()) r_.fail(loc, field, "'" + family + "': " + why);
        for (std::size_t j = 0; j < i; ++j)
          if ((*formats)[j].first == family) r_.fail(loc, field, "format family '" + family + "' is listed twice");
        p.formats.push_back(family);
      }
    }
    if (auto candidates = r_.strings(*m, "candidates")) {
      if (candidates->empty())
        r_.fail(r_.value_location(*m, "candidates"), "search.precision.candidates", "the list of candidates is empty");
      for (std::size_t i = 0; i < candidates->size(); ++i) {
        const auto& [text, loc] = (*candidates)[i];
        const std::string field = "search.precision.candidates[" + std::to_string(i) + "]";
        std::string problem;
        const auto pair = ir::parse_precision_pair(text, &problem);
        if (!pair)
          r_.fail(loc, field,
                  "'" + text + "' is not a precision pair (" + problem + "); a precision pair is K<key>V<value>, each side bits (16, 8, 4, 3, 2) then optionally "
                            "t, a or c, r and g<N>, like K8V4, K4V2cr or K4trV4tr (specs/README.md)");
        for (const ir::SideFormat& side : {pair->key, pair->value})
          if (const std::string why = ir::side_problem(side, s_.model.head_dim); !why.empty())
            r_.fail(loc, field, "'" + text + "': " + why);
        for (std::size_t j = 0; j < i; ++j)
          if ((*candidates)[j].first == text) r_.fail(loc, field, "candidate '" + text + "' is listed twice");
        p.candidates.push_back(text);
      }
    }
  }

  // Values are grouped per token along channels; a head at least as wide as the
  // group must split into whole groups. Narrower heads use one group per head
  // (see value_group()).
  void check_group_fits_head(const std::optional<Map>& precision) {
    const int g = s_.search.precision.group, d = s_.model.head_dim;
    if (d < g || d % g == 0) return;
    const std::string msg = "head_dim " + std::to_string(d) + " is not a multiple of the value group " +
                            std::to_string(g) + "; pick a group that divides it (8, 16, 32, 64 or 128)";
    if (precision && precision->has("group")) r_.fail(r_.value_location(*precision, "group"), "search.precision.group", msg);
    r_.fail(s_.location_of("model.head_dim"), "model.head_dim", msg + " with search.precision.group");
  }

  void read_retention(const Map& search) {
    RetentionSearch& t = s_.search.retention;
    const auto m = r_.section(search, "retention", kRetentionKeys);
    if (!m) return;
    if (auto method = r_.choice(*m, "method", kRetentionMethods)) t.method = *method;
    if (auto sink = r_.integer(*m, "sink", 0, kMaxContext)) t.sink = static_cast<int>(*sink);
    if (auto window = r_.integer(*m, "window", 0, kMaxContext)) t.window = static_cast<int>(*window);
    if (auto pool = r_.integer(*m, "pool", 1, 1 << 16)) {
      if (*pool % 2 == 0)
        r_.fail(r_.value_location(*m, "pool"), "search.retention.pool",
                "pool " + std::to_string(*pool) + " must be odd (a max-pool kernel centred on each position)");
      t.pool = static_cast<int>(*pool);
    }
    if (auto gamma = r_.number(*m, "gamma")) {
      if (*gamma < 0) r_.fail(r_.value_location(*m, "gamma"), "search.retention.gamma", "gamma must be at least 0");
      t.gamma = *gamma;
    }
    if ((t.method == "snapkv" || t.method == "cake") && t.window < 1)
      r_.fail(s_.location_of("search.retention.window"), "search.retention.window",
              t.method + " needs an observation window of at least 1 token");
    if (t.method != "none" && static_cast<std::int64_t>(t.sink) + t.window > s_.workload.context) {
      const std::string field = m->has("window") ? "search.retention.window" : "search.retention.sink";
      r_.fail(s_.location_of(field), field,
              "sink " + std::to_string(t.sink) + " + window " + std::to_string(t.window) + " tokens exceed workload.context " +
                  std::to_string(s_.workload.context));
    }
  }

  void read_lowrank(const Map& search) {
    LowRankSearch& l = s_.search.lowrank;
    const auto m = r_.section(search, "lowrank", kLowRankKeys);
    if (!m) return;
    if (auto method = r_.choice(*m, "method", kLowRankMethods)) l.method = *method;
    if (auto group = r_.integer(*m, "group_layers", 1, kMaxShape)) {
      if (*group > s_.model.layers)
        r_.fail(r_.value_location(*m, "group_layers"), "search.lowrank.group_layers",
                "group_layers " + std::to_string(*group) + " exceeds the model's " + std::to_string(s_.model.layers) +
                    " layers");
      l.group_layers = static_cast<int>(*group);
    }
    if (auto energy = r_.number(*m, "energy")) {
      if (*energy < 0 || *energy > 1)
        r_.fail(r_.value_location(*m, "energy"), "search.lowrank.energy",
                "energy " + number_text(*energy) + " must be between 0 and 1 (a fraction of the spectrum; 0 = the budget decides)");
      l.energy = *energy;
    }
    if (auto basis = r_.choice(*m, "basis", kBases)) {
      if (*basis == "calibrated" && s_.calibration_stats.empty())
        r_.fail(r_.value_location(*m, "basis"), "search.lowrank.basis",
                "a calibrated basis needs calibration.stats (run `kvc calibrate` first)");
      l.basis = *basis;
    }
  }

  void check_pipeline(const Map& search, const std::string& pipeline) {
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = pipeline.find(',', start);
      const std::string name = pipeline.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      bool ok = !name.empty();
      for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
      if (!ok)
        r_.fail(r_.value_location(search, "pipeline"), "search.pipeline",
                "'" + pipeline + "' is not a pass list like \"uniform,estimate,legalize\" (bad pass name '" + name + "')");
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }

  void read_target(const Map& root) {
    const auto m = r_.section(root, "target", kTargetKeys);
    if (!m) return;
    TargetOptions& t = s_.target;
    if (auto backend = r_.choice(*m, "backend", kBackends)) t.backend = *backend;
    if (auto cpu = r_.string(*m, "cpu")) {
      for (char c : *cpu)
        if (c == ' ' || c == '\t')
          r_.fail(r_.value_location(*m, "cpu"), "target.cpu", "cpu '" + *cpu + "' must be one name such as native or znver4");
      t.cpu = *cpu;
    }
    if (auto threads = r_.integer(*m, "threads", 1, 256)) t.threads = static_cast<int>(*threads);
  }

  void read_budget(const Map& root) {
    const auto budget = r_.section(root, "budget", kBudgetKeys);
    if (!budget) r_.missing(root, "budget", "bytes: like 4GiB, or ratio: of the fp16 cache");
    const Map& b = *budget;
    if (b.has("bytes") && b.has("ratio"))
      r_.fail(r_.key_location(b, "ratio"), "budget.ratio", "give exactly one of budget.bytes and budget.ratio, not both");
    if (!b.has("bytes") && !b.has("ratio"))
      r_.missing(b, "bytes", "give budget.bytes (like 4GiB) or budget.ratio (of the fp16 cache)");

    const ir::Module module = s_.to_module();
    const std::int64_t fp16 = ir::fp16_bytes(module);
    std::string field;
    if (b.has("bytes")) {
      field = "budget.bytes";
      const auto text = r_.string(b, "bytes");
      std::optional<std::int64_t> bytes;
      try {
        bytes = parse_byte_size(*text);
      } catch (const std::exception&) {
        // parse_byte_size's std::stod throws on numbers beyond double range; that is "not a size" too.
      }
      if (!bytes)
        r_.fail(r_.value_location(b, "bytes"), field,
                "'" + *text + "' is not a size: write a whole number of bytes or a number with a unit "
                "(B, KiB, MiB, GiB, TiB or KB, MB, GB, TB), like 4GiB or 512MiB");
      if (*bytes <= 0) r_.fail(r_.value_location(b, "bytes"), field, "the budget must be more than 0 bytes");
      s_.budget_bytes = *bytes;
    } else {
      field = "budget.ratio";
      const double ratio = *r_.number(b, "ratio");
      if (!(ratio > 0) || ratio > 1)
        r_.fail(r_.value_location(b, "ratio"), field,
                "ratio " + number_text(ratio) + " must be in (0, 1]: a fraction of the fp16 cache (" + format_bytes(fp16) + ")");
      s_.budget_ratio = ratio;
      // Nearest byte: 0.3 of 327680 is 98304, not the 98303 that 0.3's binary rounding would floor to.
      s_.budget_bytes = static_cast<std::int64_t>(std::llround(static_cast<long double>(ratio) * fp16));
    }
    const int group = s_.search.precision.group;
    const std::int64_t floor_bytes = ir::total_bytes(ir::smallest_plan(s_.to_module(), group));
    if (s_.budget_bytes < floor_bytes)
      r_.fail(s_.location_of(field), field,
              "the budget of " + format_bytes(s_.budget_bytes) + " (" + std::to_string(s_.budget_bytes) +
                  " bytes) is smaller than the smallest plan kvc can build for this model and workload, " +
                  format_bytes(floor_bytes) + " (" + std::to_string(floor_bytes) + " bytes: every layer K2V2, group " +
                  std::to_string(group) + ", keeping only its " + std::to_string(group) + "-token fp16 tail)");
  }

  Spec& s_;
  yaml::Reader r_;
  fs::path base_;
};

}  // namespace

SourceLocation Spec::location_of(const std::string& field) const {
  std::string f = field;
  while (true) {
    if (auto it = locations.find(f); it != locations.end()) return it->second;
    const auto cut = f.find_last_of(".[");
    if (cut == std::string::npos) break;
    f.resize(cut);
  }
  return SourceLocation{path, 0, 0};
}

ir::Module Spec::to_module() const { return ir::make_uncompressed_module(model, workload, budget_bytes); }

Spec parse_spec(const std::string& text, const std::string& path) {
  Spec spec;
  spec.path = path;
  SpecParser(spec, path).parse(text);
  return spec;
}

Spec load_spec(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw Error(SourceLocation{path, 0, 0}, "", "spec file not found: '" + path + "'");
  if (!fs::is_regular_file(status)) throw Error(SourceLocation{path, 0, 0}, "", "spec path is not a regular file: '" + path + "'");
  // A spec is a few hundred bytes; anything huge is the wrong file.
  constexpr std::uintmax_t kMaxSpecBytes = 4u << 20;
  if (fs::file_size(path, ec) > kMaxSpecBytes)
    throw Error(SourceLocation{path, 0, 0}, "", "spec file is larger than 4 MiB; is it the right file?");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot read spec file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_spec(text.str(), path);
}

}  // namespace kvc::frontend
