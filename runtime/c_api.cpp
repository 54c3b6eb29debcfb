// kvc.h: the C surface over runtime::Store. Every entry point turns exceptions
// into a status code and a thread-local message.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <string>

#include "ir/parser.h"
#include "kvc.h"
#include "runtime/status_error.h"
#include "runtime/store.h"

struct kvc_runtime {
  std::unique_ptr<kvc::runtime::Store> store;
};

namespace {

thread_local std::string last_error;

kvc_status report(kvc_status status, std::string message) {
  last_error = std::move(message);
  return status;
}

// Runs body; maps what it throws to a status. `fallback` is the status of a plain
// kvc::Error (bad input found by a lower layer: the parser, the reference code).
template <typename Body>
kvc_status guarded(kvc_status fallback, Body&& body) {
  try {
    body();
    return KVC_OK;
  } catch (const kvc::runtime::StatusError& e) {
    return report(e.status(), e.what());
  } catch (const kvc::Error& e) {
    return report(fallback, e.what());
  } catch (const std::bad_alloc&) {
    return report(KVC_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return report(KVC_ERROR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return report(KVC_ERROR_INTERNAL, "internal error");
  }
}

kvc_status null_runtime() { return report(KVC_ERROR_INVALID_ARGUMENT, "runtime is null"); }

int threads_of(const kvc_runtime_options* options) { return options && options->threads > 1 ? options->threads : 1; }

// sizeof(kvc_runtime_config) up to, not including, int8_dot: the smallest size accepted.
constexpr std::uint32_t kFirstConfigSize = offsetof(kvc_runtime_config, int8_dot);

// The Store options a config asks for; NULL = the defaults.
kvc::runtime::StoreOptions store_options(const kvc_runtime_config* config) {
  // A host built against an older kvc.h passes a shorter struct: read only its
  // `size` bytes and keep the defaults of the fields it does not know.
  kvc_runtime_config c = kvc_runtime_config_default();
  if (config) {
    if (config->size < kFirstConfigSize || config->size > sizeof(kvc_runtime_config))
      kvc::runtime::fail(KVC_ERROR_INVALID_ARGUMENT,
                         "kvc_runtime_config.size is " + std::to_string(config->size) + ", expected " +
                             std::to_string(kFirstConfigSize) + " to " + std::to_string(sizeof(kvc_runtime_config)) +
                             " (start from kvc_runtime_config_default())");
    std::memcpy(&c, config, config->size);
  }
  kvc::runtime::StoreOptions o;
  o.threads = c.threads > 1 ? c.threads : 1;
  // A C caller may store any int in an enum field; in C++ loading an enum outside its
  // enumerators is undefined, so read the fields as plain integers and check them first.
  static_assert(sizeof(kvc_backend) == sizeof(std::int32_t) && sizeof(kvc_isa) == sizeof(std::int32_t));
  std::int32_t backend = 0, isa = 0;
  std::memcpy(&backend, &c.backend, sizeof backend);
  std::memcpy(&isa, &c.isa, sizeof isa);
  if (backend < KVC_BACKEND_REFERENCE || backend > KVC_BACKEND_LLVM_AOT)
    kvc::runtime::fail(KVC_ERROR_INVALID_ARGUMENT, "unknown backend " + std::to_string(backend));
  o.backend = static_cast<kvc_backend>(backend);
  switch (isa) {
    case KVC_ISA_HOST: o.isa = kvc::ir::KernelIsa::Host; break;
    case KVC_ISA_SCALAR: o.isa = kvc::ir::KernelIsa::Scalar; break;
    case KVC_ISA_AVX2: o.isa = kvc::ir::KernelIsa::Avx2; break;
    case KVC_ISA_AVX512: o.isa = kvc::ir::KernelIsa::Avx512; break;
    default: kvc::runtime::fail(KVC_ERROR_INVALID_ARGUMENT, "unknown isa " + std::to_string(isa));
  }
  o.int8_dot = c.int8_dot != 0;
  return o;
}

// `kvc compile -o DIR` writes the plan as DIR/plan.kvc.
kvc::ir::Module read_plan(const char* plan_path) {
  std::filesystem::path path(plan_path);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) path /= "plan.kvc";
  return kvc::ir::read_module_file(path.string());
}

}  // namespace

extern "C" {

const char* kvc_last_error(void) { return last_error.c_str(); }

const char* kvc_status_name(kvc_status status) {
  switch (status) {
    case KVC_OK: return "ok";
    case KVC_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case KVC_ERROR_CAPACITY: return "capacity exceeded";
    case KVC_ERROR_STATE: return "call out of order";
    case KVC_ERROR_PLAN: return "bad plan";
    case KVC_ERROR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

kvc_status kvc_runtime_create(const char* plan_path, const kvc_runtime_options* options, kvc_runtime** out) {
  if (!plan_path || !out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_runtime_create: null argument");
  *out = nullptr;
  return guarded(KVC_ERROR_PLAN, [&] {
    auto rt = std::make_unique<kvc_runtime>();
    rt->store = std::make_unique<kvc::runtime::Store>(read_plan(plan_path), threads_of(options));
    *out = rt.release();
  });
}

kvc_status kvc_runtime_create_from_text(const char* plan_text, const kvc_runtime_options* options,
                                        kvc_runtime** out) {
  if (!plan_text || !out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_runtime_create_from_text: null argument");
  *out = nullptr;
  return guarded(KVC_ERROR_PLAN, [&] {
    auto rt = std::make_unique<kvc_runtime>();
    rt->store = std::make_unique<kvc::runtime::Store>(kvc::ir::parse_module(plan_text, "<plan text>"),
                                                      threads_of(options));
    *out = rt.release();
  });
}

kvc_runtime_config kvc_runtime_config_default(void) {
  kvc_runtime_config c{};
  c.size = sizeof(kvc_runtime_config);
  c.threads = 1;
  c.backend = KVC_BACKEND_LLVM_JIT;
  c.isa = KVC_ISA_HOST;
  return c;
}

kvc_status kvc_runtime_create_with_config(const char* plan_path, const kvc_runtime_config* config, kvc_runtime** out) {
  if (!plan_path || !out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_runtime_create_with_config: null argument");
  *out = nullptr;
  return guarded(KVC_ERROR_PLAN, [&] {
    const kvc::runtime::StoreOptions options = store_options(config);
    auto rt = std::make_unique<kvc_runtime>();
    rt->store = std::make_unique<kvc::runtime::Store>(read_plan(plan_path), options);
    *out = rt.release();
  });
}

kvc_status kvc_runtime_create_from_text_with_config(const char* plan_text, const kvc_runtime_config* config,
                                                    kvc_runtime** out) {
  if (!plan_text || !out)
    return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_runtime_create_from_text_with_config: null argument");
  *out = nullptr;
  return guarded(KVC_ERROR_PLAN, [&] {
    const kvc::runtime::StoreOptions options = store_options(config);
    auto rt = std::make_unique<kvc_runtime>();
    rt->store = std::make_unique<kvc::runtime::Store>(kvc::ir::parse_module(plan_text, "<plan text>"), options);
    *out = rt.release();
  });
}

kvc_status kvc_backend_from_name(const char* name, kvc_backend* out) {
  if (!name || !out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_backend_from_name: null argument");
  for (kvc_backend b : {KVC_BACKEND_REFERENCE, KVC_BACKEND_LLVM_JIT, KVC_BACKEND_LLVM_AOT})
    if (std::string(name) == kvc_backend_name(b)) {
      *out = b;
      return KVC_OK;
    }
  return report(KVC_ERROR_INVALID_ARGUMENT,
                "unknown backend '" + std::string(name) + "' (expected llvm-jit, llvm-aot or reference)");
}

const char* kvc_backend_name(kvc_backend backend) {
  std::int32_t value = 0;  // as an integer: a C caller may pass any value (see store_options)
  std::memcpy(&value, &backend, sizeof value);
  switch (value) {
    case KVC_BACKEND_REFERENCE: return "reference";
    case KVC_BACKEND_LLVM_JIT: return "llvm-jit";
    case KVC_BACKEND_LLVM_AOT: return "llvm-aot";
  }
  return "unknown";
}

void kvc_runtime_destroy(kvc_runtime* rt) { delete rt; }

kvc_status kvc_model_info_get(const kvc_runtime* rt, kvc_model_info* out) {
  if (!rt) return null_runtime();
  if (!out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_model_info_get: null output");
  const kvc::ir::Module& m = rt->store->module();
  out->layers = static_cast<int32_t>(m.layers.size());
  out->q_heads = m.model.q_heads;
  out->kv_heads = m.model.kv_heads;
  out->head_dim = m.model.head_dim;
  out->context = m.workload.context;
  out->batch = m.workload.batch;
  return KVC_OK;
}

kvc_status kvc_sequence_create(kvc_runtime* rt, kvc_seq* out) {
  if (!rt) return null_runtime();
  if (!out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_sequence_create: null output");
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { *out = rt->store->create_sequence(); });
}

kvc_status kvc_sequence_fork(kvc_runtime* rt, kvc_seq source, kvc_seq* out) {
  if (!rt) return null_runtime();
  if (!out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_sequence_fork: null output");
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { *out = rt->store->fork_sequence(source); });
}

kvc_status kvc_sequence_free(kvc_runtime* rt, kvc_seq seq) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->free_sequence(seq); });
}

kvc_status kvc_append(kvc_runtime* rt, int32_t layer, kvc_seq seq, const float* k, const float* v, int64_t n_tokens) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->append(layer, seq, k, v, n_tokens); });
}

kvc_status kvc_end_prefill(kvc_runtime* rt, int32_t layer, kvc_seq seq, const float* window, int64_t n_q) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->end_prefill(layer, seq, window, n_q); });
}

kvc_status kvc_attend(kvc_runtime* rt, int32_t layer, kvc_seq seq, const float* q, float* out) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->attend(layer, seq, q, out); });
}

kvc_status kvc_attend_batch(kvc_runtime* rt, int32_t layer, const kvc_seq* seqs, int32_t n_seqs, const float* q,
                            float* out) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->attend_batch(layer, seqs, n_seqs, q, out); });
}

kvc_status kvc_set_calibrated_basis(kvc_runtime* rt, int32_t layer, int32_t kv_head, const float* basis) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->set_calibrated_basis(layer, kv_head, basis); });
}

kvc_status kvc_set_layer_kernel(kvc_runtime* rt, int32_t layer, kvc_attend_fn kernel) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->set_layer_kernel(layer, kernel); });
}

kvc_status kvc_set_layer_append(kvc_runtime* rt, int32_t layer, kvc_append_fn encoder) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] { rt->store->set_layer_append(layer, encoder); });
}

kvc_status kvc_memory_stats_get(const kvc_runtime* rt, kvc_memory_stats* out) {
  if (!rt) return null_runtime();
  if (!out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_memory_stats_get: null output");
  return guarded(KVC_ERROR_INTERNAL, [&] { *out = rt->store->memory_stats(); });
}

kvc_status kvc_kernel_stats_get(const kvc_runtime* rt, kvc_kernel_stats* out) {
  if (!rt) return null_runtime();
  if (!out) return report(KVC_ERROR_INVALID_ARGUMENT, "kvc_kernel_stats_get: null output");
  return guarded(KVC_ERROR_INTERNAL, [&] { *out = rt->store->kernel_stats(); });
}

kvc_status kvc_layer_kernel_names(const kvc_runtime* rt, int32_t layer, const char** attend, const char** append) {
  if (!rt) return null_runtime();
  return guarded(KVC_ERROR_INVALID_ARGUMENT, [&] {
    const char* a = rt->store->attend_kernel_name(layer);
    const char* e = rt->store->append_kernel_name(layer);
    if (attend) *attend = a;
    if (append) *append = e;
  });
}

}  // extern "C"
