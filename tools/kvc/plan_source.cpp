#include "plan_source.h"

#include "frontend/spec.h"
#include "ir/parser.h"
#include "passes/pass_manager.h"

namespace kvc::cli {

ir::Module module_from_spec(const std::string& path) {
  const frontend::Spec spec = frontend::load_spec(path);
  ir::Module module = spec.to_module();
  passes::PassContext ctx;
  ctx.search = spec.search;
  ctx.calibration_stats = spec.calibration_stats;
  const std::string pipeline = !spec.search.pipeline.empty() ? spec.search.pipeline : passes::default_pipeline(ctx);
  passes::PassManager pm(passes::parse_pipeline(pipeline));
  pm.run(module, ctx);
  return module;
}

ir::Module load_plan_or_spec(const std::string& plan_path, const std::string& spec_path) {
  return plan_path.empty() ? module_from_spec(spec_path) : ir::read_module_file(plan_path);
}

}  // namespace kvc::cli
