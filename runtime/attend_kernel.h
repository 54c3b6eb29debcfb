#pragma once
// Kernel dispatch: one attention kernel per layer, called per (sequence, KV head)
// through the kvc_attend_fn calling convention (backends/kernel_abi.h). The
// reference kernel needs the layer's plan, so it is wrapped; JIT and AOT kernels
// are generated for one layer's plan and are plain function pointers.
#include <memory>

#include "backends/kernel_abi.h"
#include "ir/plan.h"

namespace kvc::runtime {

class AttendKernel {
 public:
  virtual ~AttendKernel() = default;
  virtual void attend(const kvc_attend_args& args) const = 0;
};

// backends/reference/attention.h for one layer.
std::unique_ptr<AttendKernel> make_reference_kernel(const ir::LayerPlan& plan, int head_dim, int group_size_g);
// A generated kernel specialised for one layer (never null).
std::unique_ptr<AttendKernel> make_function_kernel(kvc_attend_fn fn);

}  // namespace kvc::runtime
