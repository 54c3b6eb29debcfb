#include "backends/llvm/llvm_target.h"

#include <map>
#include <mutex>
#include <vector>

#include <llvm/ADT/StringMap.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/MCSubtargetInfo.h>
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

const llvm::Target& native_target(std::string& triple) {
  initialize_native_target();
  std::string err;
  triple = llvm::sys::getProcessTriple();
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, err);
  if (!target) throw Error("LLVM has no target for " + triple + ": " + err);
  return *target;
}

// Every feature of LLVM's table for this target, on or off as `cpu` has it. For the
// host that is what CPUID says; for a named CPU it is LLVM's definition of that CPU.
// Looked up once per CPU: set_isa_attributes asks for it for every kernel function.
const llvm::StringMap<bool>& cpu_features(const CpuTarget& cpu) {
  static std::mutex mutex;
  static std::map<std::string, llvm::StringMap<bool>> cache;
  const std::string key = (cpu.host ? "host:" : "cpu:") + cpu.name;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  llvm::StringMap<bool> features;
  if (cpu.host) {
    features = llvm::sys::getHostCPUFeatures();
  } else {
    std::string triple;
    const llvm::Target& target = native_target(triple);
    std::unique_ptr<llvm::MCSubtargetInfo> sti(target.createMCSubtargetInfo(triple, cpu.name, ""));
    if (!sti) throw Error("LLVM has no subtarget information for " + triple);
    for (const llvm::SubtargetFeatureKV& kv : sti->getAllProcessorFeatures())
      features[kv.Key] = sti->checkFeatures(std::string("+") + kv.Key);
  }
  return cache.emplace(key, std::move(features)).first->second;
}

// The CPU's features with the ones an isa must not use switched off.
std::string features_for(ir::KernelIsa isa, const CpuTarget& cpu) {
  llvm::SubtargetFeatures feats;
  for (auto& kv : cpu_features(cpu)) {
    bool on = kv.second;
    if (isa != ir::KernelIsa::Avx512 && is_avx512_feature(kv.first())) on = false;
    feats.AddFeature(kv.first(), on);
  }
  return feats.getString();
}

CpuTarget host_cpu() { return {llvm::sys::getHostCPUName().str(), true}; }

}  // namespace

void initialize_native_target() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

CpuTarget resolve_cpu(const std::string& cpu) {
  if (cpu.empty() || cpu == "native") return host_cpu();
  std::string triple;
  const llvm::Target& target = native_target(triple);
  std::unique_ptr<llvm::MCSubtargetInfo> sti(target.createMCSubtargetInfo(triple, "", ""));
  if (!sti || !sti->isCPUStringValid(cpu))
    throw Error({}, "target.cpu",
                "unknown CPU '" + cpu + "' for " + triple + " (use native, or a name LLVM knows such as x86-64-v3, " +
                    "x86-64-v4 or znver4)");
  return {cpu, false};
}

bool cpu_supports(const CpuTarget& cpu, ir::KernelIsa isa) {
  const llvm::StringMap<bool>& f = cpu_features(cpu);
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

bool cpu_has_feature(const CpuTarget& cpu, const std::string& feature) {
  const auto& features = cpu_features(cpu);
  auto it = features.find(feature);
  return it != features.end() && it->second;
}

bool host_supports(ir::KernelIsa isa) { return cpu_supports(host_cpu(), isa); }

ir::KernelIsa best_isa(const CpuTarget& cpu) {
  if (cpu_supports(cpu, ir::KernelIsa::Avx512)) return ir::KernelIsa::Avx512;
  if (cpu_supports(cpu, ir::KernelIsa::Avx2)) return ir::KernelIsa::Avx2;
  return ir::KernelIsa::Scalar;
}

ir::KernelIsa host_isa() { return best_isa(host_cpu()); }

ir::KernelIsa resolve_isa_for(const CpuTarget& cpu, ir::KernelIsa requested) {
  if (requested == ir::KernelIsa::Host) return best_isa(cpu);
  if (!cpu_supports(cpu, requested))
    throw Error({}, "isa",
                (cpu.host ? std::string("this CPU") : "CPU " + cpu.name) + " cannot run " + ir::to_string(requested) +
                    " kernels");
  return requested;
}

ir::KernelIsa resolve_isa(ir::KernelIsa requested) { return resolve_isa_for(host_cpu(), requested); }

int isa_lanes(ir::KernelIsa isa) {
  switch (isa) {
    case ir::KernelIsa::Avx512: return 16;
    case ir::KernelIsa::Avx2: return 8;
    default: return 1;
  }
}

std::unique_ptr<llvm::TargetMachine> make_target_machine(const CpuTarget& cpu, bool pic) {
  std::string triple;
  const llvm::Target& target = native_target(triple);
  // The machine-wide features are the CPU's widest; each function narrows them to its isa.
  std::unique_ptr<llvm::TargetMachine> tm(target.createTargetMachine(
      triple, cpu.name, features_for(ir::KernelIsa::Avx512, cpu), llvm::TargetOptions(),
      pic ? llvm::Reloc::PIC_ : llvm::Reloc::Static, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!tm) throw Error("LLVM could not create a target machine for " + triple + " (CPU " + cpu.name + ")");
  return tm;
}

std::unique_ptr<llvm::TargetMachine> make_host_target_machine(bool pic) { return make_target_machine(host_cpu(), pic); }

void set_isa_attributes(llvm::Function& f, ir::KernelIsa isa) { set_isa_attributes(f, isa, host_cpu()); }

void set_isa_attributes(llvm::Function& f, ir::KernelIsa isa, const CpuTarget& cpu) {
  f.addFnAttr("target-cpu", cpu.name);
  f.addFnAttr("target-features", features_for(isa, cpu));
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
