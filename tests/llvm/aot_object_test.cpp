// AOT: emit_object writes kernels.o + kvc_kernels.h; a plain C host program
// (tests/llvm/aot_host/host.c) is compiled and linked against them with the
// system C compiler, run, and its outputs compared with the reference kernels.
// The append encoders in the same object: defined symbols (nm), declared and
// mapped per layer in the header, and (through a generated C host) writing the
// reference encoder's bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "backends/llvm/object_emitter.h"
#include "backends/reference/attention.h"
#include "backends/reference/quantize.h"
#include "ir/layout.h"
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
  EXPECT_NE(h.find("void kvc_append_k4pc32_v2pt32_d128_avx2(const kvc_append_args* args);"), std::string::npos);
  EXPECT_NE(h.find("/* layer 1 */ kvc_append_k4pc32_v2pt32_d128_avx2,"), std::string::npos);
  EXPECT_THROW(emit_object({s}, {1}, "/tmp/unused"), Error);
}

// Encoders depend only on the storage formats: kernels that differ in g or the
// int8-dot option share one; another format gets its own.
TEST(AotObject, HeaderSharesAppendEncodersAcrossKernelsOfOneFormat) {
  ir::KernelSpec a;
  a.head_dim = 64;
  a.key_dims = 64;
  a.g = 2;
  a.token_block = 32;
  a.key = {4, ir::QuantAxis::PerChannel, 32};
  a.value = {2, ir::QuantAxis::PerToken, 32};
  a.isa = ir::KernelIsa::Scalar;
  ir::KernelSpec wider = a, int8 = a, other = a;
  wider.g = 8;
  int8.int8_dot = true;
  other.value.bits = 4;
  const std::string h = kernels_header({a, wider, int8, other}, {0, 1, 2, 3, 0});
  EXPECT_NE(h.find("#define KVC_NUM_KERNELS 4\n"), std::string::npos);
  EXPECT_NE(h.find("#define KVC_NUM_APPENDS 2\n"), std::string::npos);
  for (int layer : {0, 1, 2, 4})
    EXPECT_NE(h.find("/* layer " + std::to_string(layer) + " */ kvc_append_k4pc32_v2pt32_d64_scalar,"),
              std::string::npos)
        << layer;
  EXPECT_NE(h.find("/* layer 3 */ kvc_append_k4pc32_v4pt32_d64_scalar,"), std::string::npos);
  std::size_t declarations = 0;
  for (std::size_t at = h.find("\nvoid kvc_append_"); at != std::string::npos; at = h.find("\nvoid kvc_append_", at + 1))
    ++declarations;
  EXPECT_EQ(declarations, 2u);
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Distinct specs of `cases`' one-layer modules and the layer -> spec table.
void lower_cases(const std::vector<testing::AttentionCase>& cases, std::vector<ir::KernelSpec>& specs,
                 std::vector<int>& table) {
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
}

// A C host that runs kvc_layer_appends[layer] on the keys/values it reads (per layer:
// B*key_dims floats, B*head_dim floats, then the block's byte count) and writes the blocks.
constexpr const char* kAppendHost = R"(#include <stdio.h>
#include <stdlib.h>
#include "kvc_kernels.h"
int main(int argc, char** argv) {
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  if (!in || !out) return 2;
  for (int layer = 0; layer < KVC_NUM_LAYERS; ++layer) {
    long long nk, nv, nb;
    if (fread(&nk, 8, 1, in) != 1 || fread(&nv, 8, 1, in) != 1 || fread(&nb, 8, 1, in) != 1) return 3;
    float* k = malloc(sizeof(float) * (size_t)nk);
    float* v = malloc(sizeof(float) * (size_t)nv);
    unsigned char* block = calloc((size_t)nb, 1);
    if (fread(k, sizeof(float), (size_t)nk, in) != (size_t)nk || fread(v, sizeof(float), (size_t)nv, in) != (size_t)nv)
      return 4;
    kvc_append_args args = {k, v, block};
    kvc_layer_appends[layer](&args);
    fwrite(block, 1, (size_t)nb, out);
    free(k);
    free(v);
    free(block);
  }
  return fclose(out) == 0 ? 0 : 5;
}
)";

TEST(AotObject, AppendEncodersAreLinkedAndWriteTheReferenceBytes) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kvc_aot_append_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::mt19937 rng(7);
  // Per-channel keys, per-token keys, low rank, fp16 (case indices pick the formats).
  std::vector<testing::AttentionCase> cases;
  for (int index : {21, 8, 17, 0}) cases.push_back(testing::random_attention_case(index, rng));
  std::vector<ir::KernelSpec> specs;
  std::vector<int> table;
  lower_cases(cases, specs, table);
  const EmittedFiles files = emit_object(specs, table, dir.string());
  ASSERT_FALSE(files.append_symbols.empty());
  EXPECT_LE(files.append_symbols.size(), files.symbols.size());

  // Every encoder is a defined global function of the object and is declared in the header.
  const std::string nm_out = (dir / "nm.txt").string();
  ASSERT_EQ(std::system(("nm -g --defined-only " + files.object_path + " > " + nm_out).c_str()), 0);
  const std::string symbols = read_text(nm_out), header = read_text(files.header_path);
  for (const std::string& a : files.append_symbols) {
    EXPECT_EQ(a.rfind("kvc_append_", 0), 0u) << a;
    EXPECT_NE(symbols.find(" T " + a + "\n"), std::string::npos) << a << " not defined in kernels.o:\n" << symbols;
    EXPECT_NE(header.find("void " + a + "(const kvc_append_args* args);"), std::string::npos) << a;
  }
  EXPECT_NE(header.find("#define KVC_NUM_APPENDS " + std::to_string(files.append_symbols.size()) + "\n"),
            std::string::npos);

  std::ofstream(dir / "append_host.c") << kAppendHost;
  const std::string exe = (dir / "append_host").string();
  const std::string compile = "cc -std=c11 -O1 -I" + dir.string() + " " + (dir / "append_host.c").string() + " " +
                              files.object_path + " -o " + exe + " 2>&1";
  ASSERT_EQ(std::system(compile.c_str()), 0) << compile;
  std::vector<std::vector<std::uint8_t>> want;
  {
    std::ofstream in(dir / "append_in.bin", std::ios::binary);
    std::normal_distribution<float> dist(0.0f, 2.0f);
    for (const auto& c : cases) {
      const int b = ir::token_block(c.plan());
      const std::size_t nk = static_cast<std::size_t>(b) * static_cast<std::size_t>(ir::key_dims(c.plan(), c.head_dim));
      const std::size_t nv = static_cast<std::size_t>(b) * static_cast<std::size_t>(c.head_dim);
      std::vector<float> k(nk), v(nv);
      for (float& x : k) x = dist(rng);
      for (float& x : v) x = dist(rng);
      std::vector<std::uint8_t> block(static_cast<std::size_t>(ir::block_bytes(c.plan(), c.head_dim)));
      reference::encode_block(c.plan(), c.head_dim, k.data(), v.data(), block.data());
      put_i64(in, static_cast<std::int64_t>(nk));
      put_i64(in, static_cast<std::int64_t>(nv));
      put_i64(in, static_cast<std::int64_t>(block.size()));
      put(in, k.data(), nk);
      put(in, v.data(), nv);
      want.push_back(block);
    }
  }
  const std::string run = exe + " " + (dir / "append_in.bin").string() + " " + (dir / "append_out.bin").string();
  ASSERT_EQ(std::system(run.c_str()), 0) << run;
  std::ifstream got_file(dir / "append_out.bin", std::ios::binary);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].describe());
    std::vector<std::uint8_t> got(want[i].size());
    got_file.read(reinterpret_cast<char*>(got.data()), static_cast<std::streamsize>(got.size()));
    ASSERT_TRUE(got_file) << "host wrote too little";
    EXPECT_EQ(got, want[i]);
  }
  std::filesystem::remove_all(dir);
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

// Whether VNNI may be used comes from the CPU the object is for, not from this
// machine: skylake-avx512 has AVX-512 but no VNNI, so its int8-dot kernel must be
// built from plain integer vector code (asking it for vpdpbusd aborts LLVM's
// instruction selection); cascadelake has VNNI.
TEST(AotObject, Int8DotKernelsFollowTheNamedCpusVnni) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kvc_aot_i8_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  EmitOptions options;
  options.int8_dot = true;
  for (const char* cpu : {"skylake-avx512", "cascadelake", "x86-64-v3"}) {
    options.cpu = cpu;
    const EmittedFiles files = emit_object({k4v2_spec()}, {0}, dir.string(), options);
    ASSERT_EQ(files.symbols.size(), 1u) << cpu;
    const std::string isa = std::string(cpu) == "x86-64-v3" ? "avx2" : "avx512";
    EXPECT_EQ(files.symbols[0], "kvc_attend_k4pc32_v2pt32_d64_g2_i8_" + isa) << cpu;
    EXPECT_GT(std::filesystem::file_size(files.object_path), 0u) << cpu;
    std::ifstream h(files.header_path);
    const std::string header((std::istreambuf_iterator<char>(h)), std::istreambuf_iterator<char>());
    EXPECT_NE(header.find(files.symbols[0]), std::string::npos) << cpu;
  }
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
