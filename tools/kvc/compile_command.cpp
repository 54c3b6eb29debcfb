// `kvc compile spec.yaml`: spec -> IR -> passes -> plan (+ report, + files).
#include <iostream>
#include <sstream>

#include "commands.h"
#include "frontend/spec.h"
#include "ir/printer.h"
#include "output_files.h"
#include "passes/estimate.h"
#include "passes/pass_manager.h"
#include "plan_report.h"
#include "support/diagnostics.h"

namespace kvc::cli {

int run_reporting_errors(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::cerr << "kvc: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kvc: internal error: " << e.what() << "\n";
    return 1;
  }
}

namespace {

struct CompileOptions {
  std::string spec;
  std::string out_dir;
  std::string emit = "report";
  bool json = false;
  std::string pipeline;
  bool print_after_all = false;
  bool time_passes = false;
};

// A pass's error about a spec field carries no position; point it at the field in the spec.
Error locate_in_spec(const Error& e, const frontend::Spec& spec, bool pipeline_from_spec) {
  if (!e.location().file.empty()) return e;
  std::string field = e.field();
  if (field == "pipeline" && pipeline_from_spec) field = "search.pipeline";
  if (field == "pipeline") return e;  // came from -p on the command line
  for (const std::string& candidate : {field, field + ".bytes", field + ".ratio"}) {
    SourceLocation loc = spec.location_of(candidate);
    if (!loc.file.empty()) return Error(loc, candidate, e.message());
  }
  return Error({spec.path, 0, 0}, field, e.message());
}

int compile(const CompileOptions& o) {
  const frontend::Spec spec = frontend::load_spec(o.spec);
  ir::Module module = spec.to_module();
  const std::string initial_ir = ir::print_module(module);

  passes::PassContext ctx;
  ctx.search = spec.search;
  ctx.calibration_stats = spec.calibration_stats;
  const bool pipeline_from_spec = o.pipeline.empty() && !spec.search.pipeline.empty();
  const std::string pipeline =
      !o.pipeline.empty() ? o.pipeline : (pipeline_from_spec ? spec.search.pipeline : passes::default_pipeline(ctx));
  try {
    passes::PassManager pm(passes::parse_pipeline(pipeline));
    if (o.print_after_all) pm.print_after_all(&std::cerr);
    pm.run(module, ctx);
    if (o.time_passes) passes::print_timings(std::cerr, pm.timings());
  } catch (const Error& e) {
    throw locate_in_spec(e, spec, pipeline_from_spec);
  }
  if (!ctx.estimate.valid) ctx.estimate = passes::estimate_module(module);

  PlanSummary summary{&module, &ctx, spec.path, pipeline};
  const std::string plan_text = ir::print_module(module);
  const std::string json_text = plan_json(summary).dump(2) + "\n";
  if (!o.out_dir.empty()) write_output_files(o.out_dir, {{"plan.kvc", plan_text}, {"plan.json", json_text}});

  if (o.json) {
    std::cout << json_text;
  } else if (o.emit == "plan") {
    std::cout << plan_text;
  } else if (o.emit == "ir") {
    std::cout << initial_ir;
  } else {
    print_plan_table(std::cout, summary);
    if (!o.out_dir.empty()) std::cout << "wrote " << o.out_dir << "/plan.kvc and " << o.out_dir << "/plan.json\n";
  }
  return 0;
}

}  // namespace

CommandRunner add_compile_command(CLI::App& app) {
  auto o = std::make_shared<CompileOptions>();
  CLI::App* cmd = app.add_subcommand("compile", "Compile a spec into a per-layer cache plan and print it");
  cmd->add_option("spec", o->spec, "The YAML spec (see specs/README.md)")->required();
  cmd->add_option("-o,--output", o->out_dir, "Write the plan (plan.kvc, IR text) and plan.json into this folder");
  cmd->add_option("--emit", o->emit,
                  "What to print: report (per-layer table and totals), plan (the final plan as IR text), "
                  "ir (the IR as lowered from the spec, before any pass)")
      ->check(CLI::IsMember({"report", "plan", "ir"}));
  cmd->add_flag("--json", o->json, "Print the plan report as one JSON object (fields: README.md)");
  std::string pass_list;
  for (const auto& info : passes::pass_registry()) pass_list += "\n  " + info.name + ": " + info.description;
  cmd->add_option("-p,--passes", o->pipeline,
                  "Comma-separated pass pipeline (default: from the spec, else uniform,estimate,legalize). Passes:" +
                      pass_list);
  cmd->add_flag("--print-after-all", o->print_after_all, "Print the IR to stderr after every pass");
  cmd->add_flag("--time-passes", o->time_passes, "Print the time each pass took to stderr");
  return [o] { return compile(*o); };
}

}  // namespace kvc::cli
