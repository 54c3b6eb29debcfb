// `kvc compile spec.yaml`: spec -> IR -> passes -> plan (+ report, + files,
// + AOT kernels, + JIT kernel compile times).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "backends/llvm/kernel_jit.h"
#include "backends/llvm/object_emitter.h"
#include "backend_commands.h"
#include "commands.h"
#include "frontend/spec.h"
#include "ir/kernel_spec.h"
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
  std::vector<std::string> emit;  // report, plan, ir, obj; empty = report
  bool json = false;
  std::string pipeline;
  bool print_after_all = false;
  bool time_passes = false;
  bool int8_dot = false;
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

bool emits(const CompileOptions& o, const std::string& what) {
  return std::find(o.emit.begin(), o.emit.end(), what) != o.emit.end();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Compiles every distinct kernel of the plan in-process, as the runtime's JIT
// dispatch will, and reports how long that took.
void time_jit_kernels(const ir::Module& module, std::ostream& out) {
  const ir::LoweredKernels lowered = ir::lower_module(module);
  const auto t0 = std::chrono::steady_clock::now();
  llvm_backend::KernelJit jit;
  KernelCompileTiming timing;
  timing.setup_seconds = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  timing.kernels = jit.get_all(lowered.specs);
  timing.compile_seconds = seconds_since(t1);
  timing.layers = static_cast<int>(lowered.layer_kernel.size());
  print_kernel_compile_report(out, timing);
}

// DIR/kernels.o + DIR/kvc_kernels.h for the plan, for target.cpu.
llvm_backend::EmittedFiles emit_kernels(const ir::Module& module, const frontend::Spec& spec, const std::string& dir,
                                        bool time_it, bool int8_dot) {
  const ir::LoweredKernels lowered = ir::lower_module(module);
  llvm_backend::EmitOptions options;
  options.cpu = spec.target.cpu;
  options.int8_dot = int8_dot;
  const auto t0 = std::chrono::steady_clock::now();
  llvm_backend::EmittedFiles files = llvm_backend::emit_object(lowered.specs, lowered.layer_kernel, dir, options);
  if (time_it)
    std::cerr << "Kernel object: " << files.symbols.size() << " kernels for CPU " << files.cpu << " emitted in "
              << seconds_since(t0) << " seconds\n";
  return files;
}

int compile(const CompileOptions& o) {
  if (o.int8_dot && !emits(o, "obj"))
    throw Error({}, "--int8-dot", "--int8-dot chooses how --emit obj compiles the kernels: add --emit obj -o DIR");
  if (emits(o, "obj") && o.out_dir.empty())
    throw Error({}, "--emit", "--emit obj writes kernels.o and kvc_kernels.h into a folder: give it with -o DIR");
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
  std::vector<std::string> written;
  if (!o.out_dir.empty()) {
    // Kernels first: they are what can still fail on a good plan (an unknown
    // target.cpu), and emit_object leaves nothing behind when it does.
    std::optional<llvm_backend::EmittedFiles> kernels;
    if (emits(o, "obj")) {
      try {
        kernels = emit_kernels(module, spec, o.out_dir, o.time_passes, o.int8_dot);
      } catch (const Error& e) {
        throw locate_in_spec(e, spec, false);
      }
    }
    try {
      write_output_files(o.out_dir, {{"plan.kvc", plan_text}, {"plan.json", json_text}});
    } catch (const Error&) {
      std::error_code ec;
      if (kernels) {
        std::filesystem::remove(kernels->object_path, ec);
        std::filesystem::remove(kernels->header_path, ec);
      }
      throw;
    }
    written = {"plan.kvc", "plan.json"};
    if (kernels) written.insert(written.end(), {"kernels.o", "kvc_kernels.h"});
  }
  // llvm-aot too: its kernels are the same code, and the JIT on this machine is how their compile
  // time is measured (the object for target.cpu is timed by --emit obj).
  if (o.time_passes && spec.target.backend != "reference") time_jit_kernels(module, std::cerr);

  if (o.json) {
    std::cout << json_text;
  } else {
    const std::vector<std::string> shown = o.emit.empty() ? std::vector<std::string>{"report"} : o.emit;
    for (const std::string& what : shown) {
      if (what == "plan") std::cout << plan_text;
      if (what == "ir") std::cout << initial_ir;
      if (what == "report") print_plan_table(std::cout, summary);
    }
  }
  if (!written.empty()) {
    // A program reading the plan, IR or JSON from stdout must not see this line there.
    const bool to_stdout = !o.json && !emits(o, "plan") && !emits(o, "ir");
    std::ostream& note = to_stdout ? std::cout : std::cerr;
    note << "wrote";
    for (std::size_t i = 0; i < written.size(); ++i)
      note << (i == 0 ? " " : (i + 1 == written.size() ? " and " : ", ")) << o.out_dir << "/" << written[i];
    note << "\n";
  }
  return 0;
}

}  // namespace

ir::Module compile_spec_plan(const frontend::Spec& spec) {
  ir::Module module = spec.to_module();
  passes::PassContext ctx;
  ctx.search = spec.search;
  ctx.calibration_stats = spec.calibration_stats;
  const bool pipeline_from_spec = !spec.search.pipeline.empty();
  const std::string pipeline = pipeline_from_spec ? spec.search.pipeline : passes::default_pipeline(ctx);
  try {
    passes::PassManager pm(passes::parse_pipeline(pipeline));
    pm.run(module, ctx);
  } catch (const Error& e) {
    throw locate_in_spec(e, spec, pipeline_from_spec);
  }
  return module;
}

CommandRunner add_compile_command(CLI::App& app) {
  auto o = std::make_shared<CompileOptions>();
  CLI::App* cmd = app.add_subcommand("compile", "Compile a spec into a per-layer cache plan and print it");
  cmd->add_option("spec", o->spec, "The YAML spec (see specs/README.md)")->required();
  cmd->add_option("-o,--output", o->out_dir,
                  "Write the plan (plan.kvc, IR text) and plan.json into this folder, and with --emit obj the "
                  "kernels (kernels.o, kvc_kernels.h)");
  cmd->add_option("--emit", o->emit,
                  "What to produce; repeat or comma-separate to combine (default: report). "
                  "report: per-layer table and totals; plan: the final plan as IR text; "
                  "ir: the IR as lowered from the spec, before any pass; "
                  "obj: ahead-of-time kernels into the -o folder, kernels.o (one C symbol per distinct layer "
                  "format, for target.cpu: native or a CPU name such as x86-64-v3, x86-64-v4, znver4) and "
                  "kvc_kernels.h (their declarations and a layer -> kernel table); see examples/aot")
      ->delimiter(',')
      ->check(CLI::IsMember({"report", "plan", "ir", "obj"}));
  cmd->add_flag("--int8-dot", o->int8_dot,
                "With --emit obj: compile every kernel whose keys or values allow it with the int8-dot option (integer "
                "dot products on the codes, symbols ending in _i8; its KL cost: README). AVX-512 VNNI when "
                "target.cpu has it");
  cmd->add_flag("--json", o->json, "Print the plan report as one JSON object (fields: README.md)");
  std::string pass_list;
  for (const auto& info : passes::pass_registry()) pass_list += "\n  " + info.name + ": " + info.description;
  cmd->add_option("-p,--passes", o->pipeline,
                  "Comma-separated pass pipeline (default: from the spec, else uniform,estimate,legalize). Passes:" +
                      pass_list);
  cmd->add_flag("--print-after-all", o->print_after_all, "Print the IR to stderr after every pass");
  cmd->add_flag("--time-passes", o->time_passes,
                "Print the time each pass took to stderr; with target.backend llvm-jit or llvm-aot also JIT-compile the plan's "
                "kernels and print their compile time (per kernel and total), with --emit obj the object's");
  return [o] { return compile(*o); };
}

}  // namespace kvc::cli
