#include "plan_report.h"

#include <cstdio>

#include "ir/precision.h"
#include "support/text.h"

namespace kvc::cli {
namespace {

// Bits, then the pair-name letters of a non-KIVI format (ir/precision.h): "4", "4tr", "2cr".
std::string format_cell(const ir::QuantFormat& f, bool key, int dims) {
  return (key ? ir::key_side(f, dims) : ir::value_side(f, dims)).name();
}

std::string group_cell(const ir::LayerPlan& p) {
  auto one = [](const ir::QuantFormat& f) { return f.bits >= 16 ? std::string("-") : std::to_string(f.group); };
  return one(p.key) + "/" + one(p.value);
}

std::string kept_cell(const ir::LayerPlan& p, std::int64_t context) {
  if (p.retention.policy == ir::RetentionPolicy::Full) return std::to_string(context) + " full";
  return std::to_string(ir::kept_tokens(p, context)) + " " + ir::to_string(p.retention.policy);
}

std::string rank_cell(const ir::LayerPlan& p) {
  if (p.lowrank.rank == 0) return "-";
  std::string s = std::to_string(p.lowrank.rank);
  if (p.lowrank.sharing == ir::BasisSharing::CrossLayer) s += " x" + std::to_string(p.lowrank.basis_group);
  return s;
}

nlohmann::ordered_json format_json(const ir::QuantFormat& f) {
  return {{"bits", f.bits},
          {"axis", ir::to_string(f.axis)},
          {"group", f.group},
          {"scheme", ir::to_string(f.scheme)},
          {"rotation", ir::to_string(f.rotation)},
          {"seed", f.seed}};
}

}  // namespace

void print_plan_table(std::ostream& out, const PlanSummary& s) {
  const ir::Module& m = *s.module;
  const passes::Estimate& e = s.ctx->estimate;
  char line[256];
  out << "kvc plan for " << m.model.name << " (" << m.model.layers << " layers, " << m.model.q_heads << " q heads, "
      << m.model.kv_heads << " kv heads, head_dim " << m.model.head_dim << "), context " << m.workload.context
      << " x batch " << m.workload.batch << "\n";
  std::snprintf(line, sizeof line, "%5s %6s %6s %7s %8s %22s %8s %14s\n", "layer", "K bits", "V bits", "group",
                "residual", "kept tokens / policy", "rank", "bytes");
  out << line;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const auto& p = m.layers[i];
    std::snprintf(line, sizeof line, "%5d %6s %6s %7s %8d %22s %8s %14lld\n", p.index, format_cell(p.key, true, ir::key_dims(p, m.model.head_dim)).c_str(),
                  format_cell(p.value, false, m.model.head_dim).c_str(), group_cell(p).c_str(), p.residual,
                  kept_cell(p, m.workload.context).c_str(), rank_cell(p).c_str(),
                  static_cast<long long>(e.layers[i].total()));
    out << line;
  }
  const double ratio = e.total > 0 ? static_cast<double>(e.fp16) / static_cast<double>(e.total) : 0.0;
  out << "total bytes:  " << e.total << " (" << format_bytes(e.total) << ")\n"
      << "budget:       " << m.budget_bytes << " (" << format_bytes(m.budget_bytes) << ")"
      << (e.total <= m.budget_bytes ? "  fits" : "  DOES NOT FIT") << "\n"
      << "fp16 cache:   " << e.fp16 << " (" << format_bytes(e.fp16) << ")\n";
  std::snprintf(line, sizeof line, "compression:  %.2fx smaller than fp16\n", ratio);
  out << line;
  out << "calibration:  " << (s.ctx->calibration_stats.empty() ? "none (no calibration statistics were used)"
                                                               : s.ctx->calibration_stats)
      << "\n";
  out << "pipeline:     " << s.pipeline << "\n";
  for (const auto& note : s.ctx->notes) out << "note: " << note << "\n";
}

nlohmann::ordered_json plan_json(const PlanSummary& s) {
  const ir::Module& m = *s.module;
  const passes::Estimate& e = s.ctx->estimate;
  nlohmann::ordered_json j;
  j["kvc"] = 1;
  j["spec"] = s.spec_path;
  j["model"] = {{"name", m.model.name},         {"layers", m.model.layers},     {"q_heads", m.model.q_heads},
                {"kv_heads", m.model.kv_heads}, {"head_dim", m.model.head_dim}, {"rope_theta", m.model.rope_theta},
                {"cache_dtype", ir::to_string(m.model.cache_dtype)}};
  j["workload"] = {{"context", m.workload.context}, {"batch", m.workload.batch}, {"generate", m.workload.generate}};
  j["total_bytes"] = e.total;
  j["budget_bytes"] = m.budget_bytes;
  j["fp16_bytes"] = e.fp16;
  j["compression_ratio"] = e.total > 0 ? static_cast<double>(e.fp16) / static_cast<double>(e.total) : 0.0;
  j["fits"] = e.total <= m.budget_bytes;
  j["calibration"] = s.ctx->calibration_stats.empty() ? nlohmann::ordered_json(nullptr)
                                                      : nlohmann::ordered_json(s.ctx->calibration_stats);
  j["pipeline"] = s.pipeline;
  j["notes"] = s.ctx->notes;
  auto& layers = j["layers"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const auto& p = m.layers[i];
    const auto& b = e.layers[i];
    layers.push_back({{"layer", p.index},
                      {"precision", ir::PrecisionPair{ir::key_side(p.key, ir::key_dims(p, m.model.head_dim)),
                                                      ir::value_side(p.value, m.model.head_dim)}
                                        .name()},
                      {"key", format_json(p.key)},
                      {"value", format_json(p.value)},
                      {"residual", p.residual},
                      {"tail_tokens", ir::tail_capacity(p)},
                      {"retention",
                       {{"policy", ir::to_string(p.retention.policy)},
                        {"budget", p.retention.budget},
                        {"sink", p.retention.sink},
                        {"window", p.retention.window},
                        {"pool", p.retention.pool},
                        {"gamma", p.retention.gamma}}},
                      {"kept_tokens", ir::kept_tokens(p, m.workload.context)},
                      {"lowrank",
                       {{"rank", p.lowrank.rank},
                        {"sharing", ir::to_string(p.lowrank.sharing)},
                        {"basis_group", p.lowrank.basis_group},
                        {"source", ir::to_string(p.lowrank.source)}}},
                      {"bytes", b.total()},
                      {"bytes_detail", {{"main", b.main}, {"tail", b.tail}, {"scores", b.scores}, {"basis", b.basis}}}});
  }
  return j;
}

void print_kernel_compile_report(std::ostream& out, const KernelCompileTiming& t) {
  const double total = t.setup_seconds + t.compile_seconds;
  out << "===-------------------------------------------------------------------------===\n"
      << "                      ... Kernel JIT compile report ...\n"
      << "===-------------------------------------------------------------------------===\n"
      << "  " << t.kernels.size() << " distinct kernels for " << t.layers << " layers, compiled in one batch\n"
      << "  Total kernel compile time: " << total << " seconds\n\n"
      << "   ---Wall Time---   --- Name ---\n";
  char line[200];
  auto row = [&](double seconds, const std::string& name) {
    std::snprintf(line, sizeof line, "   %9.6f (%5.1f%%)  %s\n", seconds, total > 0 ? 100.0 * seconds / total : 0.0,
                  name.c_str());
    out << line;
  };
  row(t.setup_seconds, "JIT setup (target machine, LLJIT)");
  for (const llvm_backend::CompiledKernel* k : t.kernels) row(k->compile_ms / 1000.0, k->name);
  std::snprintf(line, sizeof line, "   %9.6f (100.0%%)  Total\n", total);
  out << line;
}

}  // namespace kvc::cli
