// runtime_soak: the runtime soak (runtime/soak.h) from the command line, for
// scripts/soak.sh.
//   runtime_soak [--seconds S] [--threads T] [--backend reference|llvm-jit]
//                [--operations N] [--seed N] [--runtime-threads N]
// Prints what ran; exits 1 when a check failed, 2 on a bad argument.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/soak.h"

int main(int argc, char** argv) {
  kvc::soak::SoakOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "runtime_soak: %s needs a value\n", arg.c_str());
      return 2;
    }
    const char* value = argv[++i];
    if (arg == "--seconds") {
      options.seconds = std::atof(value);
    } else if (arg == "--threads") {
      options.threads = std::atoi(value);
    } else if (arg == "--operations") {
      options.max_operations = std::atoll(value);
    } else if (arg == "--seed") {
      options.seed = static_cast<std::uint32_t>(std::strtoul(value, nullptr, 10));
    } else if (arg == "--runtime-threads") {
      options.runtime_threads = std::atoi(value);
    } else if (arg == "--backend") {
      if (kvc_backend_from_name(value, &options.backend) != KVC_OK) {
        std::fprintf(stderr, "runtime_soak: %s\n", kvc_last_error());
        return 2;
      }
    } else {
      std::fprintf(stderr, "runtime_soak: unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  const kvc::soak::SoakReport r = kvc::soak::run_soak(options);
  std::printf("runtime_soak %s, %d threads: %s\n", kvc_backend_name(options.backend), options.threads,
              kvc::soak::describe(r).c_str());
  return r.failure.empty() ? 0 : 1;
}
