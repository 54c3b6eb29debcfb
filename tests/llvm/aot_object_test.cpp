// AOT: emit_object writes kernels.o + kvc_kernels.h; a plain C host program
// (tests/llvm/aot_host/host.c) is compiled and linked against them with the
// system C compiler, run, and its outputs compared with the reference kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "backends/llvm/object_emitter.h"
#include "backends/reference/attention.h"
#include "random_attention_case.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

#include <unistd.h>

namespace kvc::llvm_backend {
namespace {

template <typename T>
void put(std::ofstream& f, const T* p, std::size_t n) {
  f.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n * sizeof(T)));
}
void put_i64(std::ofstream& f, std::int64_t v) { put(f, &v, 1); }

TEST(AotObject, HostProgramLinksKernelsAndMatchesReference) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kvc_aot_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::mt19937 rng(99);
  // Three "layers": a fp16 one, a quantized one, and a low-rank one (case indices pick the formats).
  std::vector<testing::AttentionCase> cases;
  for (int index : {0, 21, 17}) cases.push_back(testing::random_attention_case(index, rng));
  std::vector<ir::KernelSpec> specs;
  std::vector<int> table;
  for (const auto& c : cases) {
    const ir::KernelSpec s = ir::lower_layer(c.module, 0);
    int found = -1;
    for (std::size_t i = 0; i < specs.size(); ++i)
      if (specs[i] == s) found = static_cast<int>(i);
    if (found < 0) {
      found = static_cast<int>(specs.size());
      specs.push_back(s);
    }
    table.push_back(found);
  }
  const EmittedFiles files = emit_object(specs, table, dir.string());
  ASSERT_TRUE(std::filesystem::exists(files.object_path));
  ASSERT_TRUE(std::filesystem::exists(files.header_path));

  const std::string host_src = testing::source_dir() + "/tests/llvm/aot_host/host.c";
  const std::string exe = (dir / "host").string();
  const std::string compile = "cc -std=c11 -O1 -I" + dir.string() + " " + host_src + " " + files.object_path +
                              " -o " + exe + " 2>&1";
  ASSERT_EQ(std::system(compile.c_str()), 0) << compile;

  std::vector<std::vector<float>> want;
  {
    std::ofstream in(dir / "input.bin", std::ios::binary);
    for (const auto& c : cases) {
      const std::int64_t bb = c.block_bytes.empty() ? 0 : static_cast<std::int64_t>(c.block_bytes[0].size());
      put_i64(in, static_cast<std::int64_t>(c.blocks.size()));
      put_i64(in, bb);
      for (const auto& b : c.block_bytes) put(in, b.data(), b.size());
      put_i64(in, c.n_tail);
      put(in, c.tail_k.data(), c.tail_k.size());
      put(in, c.tail_v.data(), c.tail_v.size());
      put(in, c.q.data(), c.q.size());
      put_i64(in, static_cast<std::int64_t>(c.basis.size()));
      put(in, c.basis.data(), c.basis.size());
      std::vector<float> out(static_cast<std::size_t>(c.g * c.head_dim));
      kvc_attend_args a = c.args(out.data(), nullptr);
      reference::reference_attend(c.plan(), c.head_dim, c.g, &a);
      want.push_back(out);
    }
  }
  const std::string run = exe + " " + (dir / "input.bin").string() + " " + (dir / "output.bin").string();
  ASSERT_EQ(std::system(run.c_str()), 0) << run;
  std::ifstream got_file(dir / "output.bin", std::ios::binary);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].describe());
    std::vector<float> got(want[i].size());
    got_file.read(reinterpret_cast<char*>(got.data()), static_cast<std::streamsize>(got.size() * sizeof(float)));
    ASSERT_TRUE(got_file) << "host wrote too little";
    double diff = 0, norm = 0;
    for (std::size_t j = 0; j < got.size(); ++j) {
      diff += (double(got[j]) - want[i][j]) * (double(got[j]) - want[i][j]);
      norm += double(want[i][j]) * want[i][j];
    }
    EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm));
  }
  std::filesystem::remove_all(dir);
}

TEST(AotObject, HeaderMapsLayersToKernels) {
  ir::KernelSpec s;
  s.head_dim = 128;
  s.key_dims = 128;
  s.g = 4;
  s.token_block = 32;
  s.key = {4, ir::QuantAxis::PerChannel, 32};
  s.value = {2, ir::QuantAxis::PerToken, 32};
  s.isa = ir::KernelIsa::Avx2;
  const std::string h = kernels_header({s}, {0, 0});
  EXPECT_NE(h.find("void kvc_attend_k4pc32_v2pt32_d128_g4_avx2(const kvc_attend_args* args);"), std::string::npos);
  EXPECT_NE(h.find("#define KVC_NUM_LAYERS 2"), std::string::npos);
  EXPECT_NE(h.find("/* layer 1 */ {kvc_attend_k4pc32_v2pt32_d128_g4_avx2, kvc_attend_k4pc32_v2pt32_d128_g4_avx2_partial"),
            std::string::npos);
  EXPECT_THROW(emit_object({s}, {1}, "/tmp/unused"), Error);
}

ir::KernelSpec k4v2_spec() {
  ir::KernelSpec s;
  s.head_dim = 64;
  s.key_dims = 64;
  s.g = 2;
  s.token_block = 32;
  s.key = {4, ir::QuantAxis::PerChannel, 32};
  s.value = {2, ir::QuantAxis::PerToken, 32};
  return s;
}

TEST(AotObject, NamedCpuChoosesItsOwnIsaNotTheHosts) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kvc_aot_cpu_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  EmitOptions options;
  options.cpu = "x86-64-v3";  // AVX2 + FMA + F16C, no AVX-512, whatever this machine has
  EmittedFiles files = emit_object({k4v2_spec()}, {0}, dir.string(), options);
  ASSERT_EQ(files.symbols.size(), 1u);
  EXPECT_EQ(files.symbols[0], "kvc_attend_k4pc32_v2pt32_d64_g2_avx2");
  EXPECT_EQ(files.cpu, "x86-64-v3");
  options.cpu = "x86-64";  // SSE2 only
  files = emit_object({k4v2_spec()}, {0}, dir.string(), options);
  EXPECT_EQ(files.symbols[0], "kvc_attend_k4pc32_v2pt32_d64_g2_scalar");
  options.cpu = "x86-64-v4";
  files = emit_object({k4v2_spec()}, {0}, dir.string(), options);
  EXPECT_EQ(files.symbols[0], "kvc_attend_k4pc32_v2pt32_d64_g2_avx512");
  // An isa the named CPU lacks is refused, even when this machine has it.
  options.cpu = "x86-64-v3";
  options.isa = ir::KernelIsa::Avx512;
  EXPECT_THROW(emit_object({k4v2_spec()}, {0}, dir.string(), options), Error);
  std::filesystem::remove_all(dir);
}

TEST(AotObject, UnknownCpuIsAnErrorOnTargetCpuAndLeavesNothing) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kvc_aot_badcpu_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  EmitOptions options;
  options.cpu = "no-such-cpu";
  try {
    emit_object({k4v2_spec()}, {0}, dir.string(), options);
    FAIL() << "no error for an unknown CPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "target.cpu");
    EXPECT_NE(std::string(e.what()).find("no-such-cpu"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "kernels.o"));
  EXPECT_FALSE(std::filesystem::exists(dir / "kvc_kernels.h"));
  std::filesystem::remove_all(dir);
}

TEST(AotObject, FailedEmitKeepsThePreviousFilesAndNoTemporaries) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kvc_aot_keep_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const EmittedFiles first = emit_object({k4v2_spec()}, {0, 0}, dir.string());
  std::ifstream h(first.header_path);
  const std::string before((std::istreambuf_iterator<char>(h)), std::istreambuf_iterator<char>());
  ir::KernelSpec bad = k4v2_spec();
  bad.head_dim = 0;
  EXPECT_THROW(emit_object({bad}, {0}, dir.string()), Error);
  std::ifstream h2(first.header_path);
  const std::string after((std::istreambuf_iterator<char>(h2)), std::istreambuf_iterator<char>());
  EXPECT_EQ(before, after);
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_NE(e.path().filename().string().front(), '.') << "temporary left behind: " << e.path();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvc::llvm_backend
