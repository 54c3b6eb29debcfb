#pragma once
// Ahead-of-time kernels: one object file with every kernel of a module (attention
// kernels and quantize-on-append encoders) and a C header that declares them and
// maps each layer to its kernel and encoder, for a host program that links them
// with no LLVM at run time.
#include <string>
#include <vector>

#include "ir/kernel_spec.h"

namespace kvc::llvm_backend {

struct EmitOptions {
  // The CPU the object is for (a spec's target.cpu): "native" = this machine, or a
  // name LLVM knows (x86-64-v3, x86-64-v4, znver4, ...). It need not be this machine.
  std::string cpu = "native";
  // Isa for specs that say Host; Host = the best `cpu` supports (AVX-512 when it
  // has avx512f/bw/vl/dq, else AVX2 with fma/f16c, else scalar). The object runs
  // only on CPUs with that isa.
  ir::KernelIsa isa = ir::KernelIsa::Host;
  // Emit every kernel whose keys or values admit it (ir::supports_int8_dot) with the int8-dot
  // option (symbols end in _i8): vpdpbusd when `cpu` has AVX-512 VNNI, the same
  // integer sums in plain vector code otherwise.
  bool int8_dot = false;
  std::string object_name = "kernels.o";
  std::string header_name = "kvc_kernels.h";
};

struct EmittedFiles {
  std::string object_path;
  std::string header_path;
  std::vector<std::string> symbols;  // attend symbol of each distinct kernel
  std::vector<std::string> append_symbols;  // symbol of each distinct append encoder (storage format)
  std::string cpu;                   // LLVM's name of the CPU the code is for
  std::vector<ir::KernelSpec> specs; // the kernels as emitted (isa resolved)
};

// Writes DIR/kernels.o and DIR/kvc_kernels.h for `specs` (distinct kernels) and
// `layer_kernel` (layer -> index into specs), as ir::lower_module returns them.
// Besides each attention kernel (and its _partial twin) the object holds one
// append encoder (append_codegen.h) per distinct storage format; the header's
// kvc_layer_kernels[] and kvc_layer_appends[] map layers to them.
// The object is position independent (links into PIE executables). Creates DIR
// when missing. Both files are written under temporary names and renamed into
// place only when both are complete, so a failure leaves neither behind (nor a
// mix of an old and a new one). Throws kvc::Error on a bad spec, a bad table, an
// unknown CPU (field target.cpu), an isa that CPU lacks, or an I/O failure.
EmittedFiles emit_object(const std::vector<ir::KernelSpec>& specs, const std::vector<int>& layer_kernel,
                         const std::string& dir, const EmitOptions& options = {});

// The header text alone (what emit_object writes), for tests and tools.
std::string kernels_header(const std::vector<ir::KernelSpec>& resolved_specs, const std::vector<int>& layer_kernel);

}  // namespace kvc::llvm_backend
