#include "backends/llvm/kernel_jit.h"

#include <chrono>
#include <map>
#include <mutex>

#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/Error.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>

#include "backends/llvm/isa.h"
#include "backends/llvm/kernel_codegen.h"
#include "backends/llvm/llvm_target.h"
#include "support/diagnostics.h"

namespace kvc::llvm_backend {
namespace {

std::string to_message(llvm::Error e) {
  std::string s;
  llvm::handleAllErrors(std::move(e), [&](const llvm::ErrorInfoBase& info) { s += info.message(); });
  return s;
}

}  // namespace

struct KernelJit::Impl {
  JitOptions options;
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::unique_ptr<llvm::TargetMachine> tm;  // gives the O3 pipeline its cost model
  std::map<std::uint64_t, std::vector<std::unique_ptr<CompiledKernel>>> cache;  // hash -> kernels (collisions kept apart)
  JitStats stats;
  mutable std::mutex mutex;

  CompiledKernel* find(const ir::KernelSpec& s) {
    auto it = cache.find(ir::hash(s));
    if (it == cache.end()) return nullptr;
    for (auto& k : it->second)
      if (k->spec == s) return k.get();
    return nullptr;
  }

  ir::KernelSpec resolved(ir::KernelSpec s) const {
    s.isa = resolve_isa(s.isa == ir::KernelIsa::Host ? options.isa : s.isa);
    ir::validate(s);
    return s;
  }

  // Builds one module per vectorisation setting, optimises it, adds it to the JIT
  // and looks every kernel up.
  void compile(const std::vector<ir::KernelSpec>& specs) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::unique_ptr<CompiledKernel>> built;
    for (bool scalar : {false, true}) {
      auto ctx = std::make_unique<llvm::LLVMContext>();
      auto mod = std::make_unique<llvm::Module>("kvc_kernels", *ctx);
      mod->setDataLayout(jit->getDataLayout());
      mod->setTargetTriple(jit->getTargetTriple().str());
      std::vector<ir::KernelSpec> mine;
      for (const auto& s : specs)
        if ((s.isa == ir::KernelIsa::Scalar) == scalar) mine.push_back(s);
      if (mine.empty()) continue;
      for (const auto& s : mine) {
        add_kernel_functions(*mod, s);
        for (llvm::Function& f : *mod)
          if (!f.isDeclaration() && !f.hasFnAttribute("target-features")) set_isa_attributes(f, s.isa);
      }
      optimize_module(*mod, *tm, !scalar);
      if (auto err = jit->addIRModule(llvm::orc::ThreadSafeModule(std::move(mod), std::move(ctx))))
        throw Error("JIT could not add the kernel module: " + to_message(std::move(err)));
      for (const auto& s : mine) {
        auto k = std::make_unique<CompiledKernel>();
        k->spec = s;
        k->name = ir::kernel_name(s);
        auto full = jit->lookup(k->name);
        if (!full) throw Error("JIT lookup of " + k->name + " failed: " + to_message(full.takeError()));
        auto part = jit->lookup(k->name + "_partial");
        if (!part) throw Error("JIT lookup of " + k->name + "_partial failed: " + to_message(part.takeError()));
        k->attend = full->toPtr<kvc_attend_fn>();
        k->partial = part->toPtr<kvc_attend_partial_fn>();
        built.push_back(std::move(k));
      }
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    stats.compile_ms += ms;
    for (auto& k : built) {
      k->compile_ms = ms / static_cast<double>(built.size());
      ++stats.kernels;
      cache[ir::hash(k->spec)].push_back(std::move(k));
    }
  }
};

KernelJit::KernelJit(JitOptions options) : impl_(std::make_unique<Impl>()) {
  initialize_native_target();
  impl_->options = options;
  impl_->options.isa = resolve_isa(options.isa);
  llvm::orc::JITTargetMachineBuilder jtmb{llvm::Triple(llvm::sys::getProcessTriple())};
  jtmb.setCPU(llvm::sys::getHostCPUName().str());
  jtmb.setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(jtmb).create();
  if (!jit) throw Error("could not create the LLVM JIT: " + to_message(jit.takeError()));
  impl_->jit = std::move(*jit);
  impl_->tm = make_host_target_machine(false);
}

KernelJit::~KernelJit() = default;

const CompiledKernel& KernelJit::get(const ir::KernelSpec& spec) { return *get_all({spec}).front(); }

std::vector<const CompiledKernel*> KernelJit::get_all(const std::vector<ir::KernelSpec>& specs) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<ir::KernelSpec> resolved, missing;
  for (const auto& s : specs) {
    resolved.push_back(impl_->resolved(s));
    const ir::KernelSpec& r = resolved.back();
    bool queued = false;
    for (const auto& m : missing) queued = queued || m == r;
    if (!impl_->find(r) && !queued) missing.push_back(r);
  }
  impl_->stats.cache_hits += static_cast<int>(specs.size() - missing.size());
  if (!missing.empty()) impl_->compile(missing);
  std::vector<const CompiledKernel*> out;
  for (const auto& r : resolved) out.push_back(impl_->find(r));
  return out;
}

JitStats KernelJit::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

}  // namespace kvc::llvm_backend
