#include "backends/llvm/llvm_target.h"

#include <mutex>
#include <vector>

#include <llvm/ADT/StringMap.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/SubtargetFeature.h>

#include "backends/llvm/isa.h"
#include "support/diagnostics.h"

namespace kvc::llvm_backend {
namespace {

bool is_avx512_feature(llvm::StringRef name) {
  return name.starts_with("avx512") || name == "evex512" || name.starts_with("amx") || name.starts_with("avx10");
}

// Host features with the ones an isa must not use switched off.
std::string features_for(ir::KernelIsa isa) {
  llvm::SubtargetFeatures feats;
  for (auto& kv : llvm::sys::getHostCPUFeatures()) {
    bool on = kv.second;
    if (isa != ir::KernelIsa::Avx512 && is_avx512_feature(kv.first())) on = false;
    feats.AddFeature(kv.first(), on);
  }
  return feats.getString();
}

}  // namespace

void initialize_native_target() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

bool host_supports(ir::KernelIsa isa) {
  const llvm::StringMap<bool> f = llvm::sys::getHostCPUFeatures();
  auto has = [&](const char* name) { return f.lookup(name); };
  switch (isa) {
    case ir::KernelIsa::Host:
    case ir::KernelIsa::Scalar: return true;
    case ir::KernelIsa::Avx2: return has("avx2") && has("fma") && has("f16c");
    case ir::KernelIsa::Avx512:
      return has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq") && has("fma") && has("f16c");
  }
  return false;
}

ir::KernelIsa host_isa() {
  if (host_supports(ir::KernelIsa::Avx512)) return ir::KernelIsa::Avx512;
  if (host_supports(ir::KernelIsa::Avx2)) return ir::KernelIsa::Avx2;
  return ir::KernelIsa::Scalar;
}

ir::KernelIsa resolve_isa(ir::KernelIsa requested) {
  if (requested == ir::KernelIsa::Host) return host_isa();
  if (!host_supports(requested))
    throw Error({}, "isa", std::string("this CPU cannot run ") + ir::to_string(requested) + " kernels");
  return requested;
}

int isa_lanes(ir::KernelIsa isa) {
  switch (isa) {
    case ir::KernelIsa::Avx512: return 16;
    case ir::KernelIsa::Avx2: return 8;
    default: return 1;
  }
}

std::unique_ptr<llvm::TargetMachine> make_host_target_machine(bool pic) {
  initialize_native_target();
  std::string err;
  const std::string triple = llvm::sys::getProcessTriple();
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, err);
  if (!target) throw Error("LLVM has no target for " + triple + ": " + err);
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, llvm::sys::getHostCPUName(), features_for(ir::KernelIsa::Avx512), llvm::TargetOptions(),
      pic ? llvm::Reloc::PIC_ : llvm::Reloc::Static, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!tm) throw Error("LLVM could not create a target machine for " + triple);
  return tm;
}

void set_isa_attributes(llvm::Function& f, ir::KernelIsa isa) {
  f.addFnAttr("target-cpu", llvm::sys::getHostCPUName());
  f.addFnAttr("target-features", features_for(isa));
  if (isa == ir::KernelIsa::Avx512) f.addFnAttr("min-legal-vector-width", "512");
  // 512-bit vectors are what the AVX-512 kernels are written for; keep LLVM from splitting them.
  f.addFnAttr("prefer-vector-width", isa == ir::KernelIsa::Avx512 ? "512" : "256");
}

void optimize_module(llvm::Module& m, llvm::TargetMachine& tm, bool vectorize) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions pto;
  // Kernels are vectorised by construction; the vectorisers would only cost compile time
  // (and must stay off for the scalar kernels).
  (void)vectorize;
  pto.LoopVectorization = false;
  pto.SLPVectorization = false;
  llvm::PassBuilder pb(&tm, pto);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
}

}  // namespace kvc::llvm_backend
