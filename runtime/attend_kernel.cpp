#include "runtime/attend_kernel.h"

#include "backends/reference/attention.h"
#include "support/diagnostics.h"

namespace kvc::runtime {

namespace {

class ReferenceKernel final : public AttendKernel {
 public:
  ReferenceKernel(const ir::LayerPlan& plan, int head_dim, int g) : plan_(plan), head_dim_(head_dim), g_(g) {}
  void attend(const kvc_attend_args& args) const override {
    reference::reference_attend(plan_, head_dim_, g_, &args);
  }

 private:
  ir::LayerPlan plan_;
  int head_dim_, g_;
};

class FunctionKernel final : public AttendKernel {
 public:
  explicit FunctionKernel(kvc_attend_fn fn) : fn_(fn) {}
  void attend(const kvc_attend_args& args) const override { fn_(&args); }

 private:
  kvc_attend_fn fn_;
};

}  // namespace

std::unique_ptr<AttendKernel> make_reference_kernel(const ir::LayerPlan& plan, int head_dim, int g) {
  return std::make_unique<ReferenceKernel>(plan, head_dim, g);
}

std::unique_ptr<AttendKernel> make_function_kernel(kvc_attend_fn fn) {
  if (!fn) throw Error("attention kernel is null");
  return std::make_unique<FunctionKernel>(fn);
}

}  // namespace kvc::runtime
