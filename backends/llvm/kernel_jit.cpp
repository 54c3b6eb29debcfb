#include "backends/llvm/kernel_jit.h"

#include <chrono>
#include <functional>
#include <map>
#include <mutex>

#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/Error.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>

#include "backends/llvm/append_codegen.h"
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

// The entry of `cache` compiled for exactly `s` (hash collisions are kept apart).
template <typename Compiled>
Compiled* find_in(std::map<std::uint64_t, std::vector<std::unique_ptr<Compiled>>>& cache, const ir::KernelSpec& s) {
  auto it = cache.find(ir::hash(s));
  if (it == cache.end()) return nullptr;
  for (auto& k : it->second)
    if (k->spec == s) return k.get();
  return nullptr;
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

struct KernelJit::Impl {
  JitOptions options;
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::unique_ptr<llvm::TargetMachine> tm;  // gives the O3 pipeline its cost model
  std::map<std::uint64_t, std::vector<std::unique_ptr<CompiledKernel>>> cache;  // hash -> kernels
  std::map<std::uint64_t, std::vector<std::unique_ptr<CompiledAppend>>> append_cache;  // hash of append_spec
  JitStats stats;
  mutable std::mutex mutex;

  ir::KernelSpec resolved(ir::KernelSpec s) const {
    s.isa = resolve_isa(s.isa == ir::KernelIsa::Host ? options.isa : s.isa);
    ir::validate(s);
    return s;
  }

  // Builds one module per vectorisation setting (the vectorisers stay off for
  // scalar specs) with `add_functions` for each spec, optimises it and adds it to
  // the JIT.
  void add_modules(const std::vector<ir::KernelSpec>& specs,
                   const std::function<void(llvm::Module&, const ir::KernelSpec&)>& add_functions) {
    for (bool scalar : {false, true}) {
      auto ctx = std::make_unique<llvm::LLVMContext>();
      auto mod = std::make_unique<llvm::Module>("kvc_kernels", *ctx);
      mod->setDataLayout(jit->getDataLayout());
      mod->setTargetTriple(jit->getTargetTriple().str());
      bool any = false;
      for (const auto& s : specs) {
        if ((s.isa == ir::KernelIsa::Scalar) != scalar) continue;
        any = true;
        add_functions(*mod, s);
        for (llvm::Function& f : *mod)
          if (!f.isDeclaration() && !f.hasFnAttribute("target-features")) set_isa_attributes(f, s.isa);
      }
      if (!any) continue;
      optimize_module(*mod, *tm, !scalar);
      if (auto err = jit->addIRModule(llvm::orc::ThreadSafeModule(std::move(mod), std::move(ctx))))
        throw Error("JIT could not add the kernel module: " + to_message(std::move(err)));
    }
  }

  template <typename Fn>
  Fn lookup(const std::string& name) {
    auto addr = jit->lookup(name);
    if (!addr) throw Error("JIT lookup of " + name + " failed: " + to_message(addr.takeError()));
    return addr->toPtr<Fn>();
  }

  void compile(const std::vector<ir::KernelSpec>& specs) {
    const auto start = std::chrono::steady_clock::now();
    static const bool vnni = cpu_has_feature(resolve_cpu("native"), "avx512vnni");
    add_modules(specs, [](llvm::Module& m, const ir::KernelSpec& s) { add_kernel_functions(m, s, vnni); });
    std::vector<std::unique_ptr<CompiledKernel>> built;
    for (const auto& s : specs) {
      auto k = std::make_unique<CompiledKernel>();
      k->spec = s;
      k->name = ir::kernel_name(s);
      k->attend = lookup<kvc_attend_fn>(k->name);
      k->partial = lookup<kvc_attend_partial_fn>(k->name + "_partial");
      built.push_back(std::move(k));
    }
    const double ms = ms_since(start);
    stats.compile_ms += ms;
    for (auto& k : built) {
      k->compile_ms = ms / static_cast<double>(built.size());
      ++stats.kernels;
      cache[ir::hash(k->spec)].push_back(std::move(k));
    }
  }

  void compile_appends(const std::vector<ir::KernelSpec>& specs) {
    const auto start = std::chrono::steady_clock::now();
    add_modules(specs, add_append_function);
    std::vector<std::unique_ptr<CompiledAppend>> built;
    for (const auto& s : specs) {
      auto k = std::make_unique<CompiledAppend>();
      k->spec = s;
      k->name = append_kernel_name(s);
      k->encode = lookup<kvc_append_fn>(k->name);
      built.push_back(std::move(k));
    }
    const double ms = ms_since(start);
    stats.compile_ms += ms;
    for (auto& k : built) {
      k->compile_ms = ms / static_cast<double>(built.size());
      ++stats.append_kernels;
      append_cache[ir::hash(k->spec)].push_back(std::move(k));
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
    if (!find_in(impl_->cache, r) && !queued) missing.push_back(r);
  }
  impl_->stats.cache_hits += static_cast<int>(specs.size() - missing.size());
  if (!missing.empty()) impl_->compile(missing);
  std::vector<const CompiledKernel*> out;
  for (const auto& r : resolved) out.push_back(find_in(impl_->cache, r));
  return out;
}

const CompiledAppend& KernelJit::get_append(const ir::KernelSpec& spec) { return *get_all_appends({spec}).front(); }

std::vector<const CompiledAppend*> KernelJit::get_all_appends(const std::vector<ir::KernelSpec>& specs) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<ir::KernelSpec> resolved, missing;
  for (const auto& s : specs) {
    resolved.push_back(append_spec(impl_->resolved(s)));
    const ir::KernelSpec& r = resolved.back();
    bool queued = false;
    for (const auto& m : missing) queued = queued || m == r;
    if (!find_in(impl_->append_cache, r) && !queued) missing.push_back(r);
  }
  impl_->stats.cache_hits += static_cast<int>(specs.size() - missing.size());
  if (!missing.empty()) impl_->compile_appends(missing);
  std::vector<const CompiledAppend*> out;
  for (const auto& r : resolved) out.push_back(find_in(impl_->append_cache, r));
  return out;
}

JitStats KernelJit::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

}  // namespace kvc::llvm_backend
