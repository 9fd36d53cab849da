#include "runtime/kernel.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

namespace edgepress::runtime {

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512vnni";
    case Isa::kAmx: return "amx";
    case Isa::kNeon: return "neon";
  }
  return "?";
}

bool CpuFeatures::Has(Isa isa) const {
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return avx2 && fma;
    case Isa::kAvx512: return avx512f && avx512bw && avx512vl && avx512dq;
    case Isa::kAvx512Vnni: return avx512f && avx512bw && avx512vl && avx512vnni;
    case Isa::kAmx: return amx_int8 && amx_tile;
    case Isa::kNeon: return neon;
  }
  return false;
}

namespace {
CpuFeatures Detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
  // gcc 12's __builtin_cpu_supports does not know AMX or F16C; read CPUID directly.
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  f.f16c = (c >> 29) & 1;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
  f.amx_tile = (d >> 24) & 1;
  f.amx_int8 = (d >> 25) & 1;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  f.avxvnni = (a >> 4) & 1;
  // AMX also needs the OS to grant tile state (arch_prctl); the AMX kernels request it
  // and fall back when refused, so only CPUID is recorded here.
#elif defined(__aarch64__)
  f.neon = true;
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) f.model_name = line.substr(colon + 2);
      break;
    }
  }
  return f;
}
}  // namespace

bool LimitCpuFeatures(CpuFeatures* f, const std::string& level) {
  static const char* const kLevels[] = {"scalar", "avx2", "avxvnni", "avx512", "avx512vnni", "amx"};
  int rank = -1;
  for (int i = 0; i < 6; ++i)
    if (level == kLevels[i]) rank = i;
  if (rank < 0) return false;
  if (rank < 1) f->avx2 = f->fma = f->f16c = false;
  if (rank != 2 && rank < 5) f->avxvnni = false;  // Intel client cores and Sapphire Rapids
  if (rank < 3) f->avx512f = f->avx512bw = f->avx512vl = f->avx512dq = false;
  if (rank < 4) f->avx512vnni = false;
  if (rank < 5) f->avx512vbmi = f->amx_int8 = f->amx_tile = false;
  return true;
}

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = [] {
    CpuFeatures f = Detect();
    if (const char* v = std::getenv("EDGEPRESS_MAX_ISA"); v && *v && !LimitCpuFeatures(&f, v))
      std::fprintf(stderr, "edgepress: warning: EDGEPRESS_MAX_ISA='%s' is not one of scalar, avx2, "
                           "avxvnni, avx512, avx512vnni, amx; ignored\n", v);
    return f;
  }();
  return features;
}

bool ForceScalar() {
  static const bool force = [] {
    const char* v = std::getenv("EDGEPRESS_FORCE_SCALAR");
    return v && std::strcmp(v, "1") == 0;
  }();
  return force;
}

const KernelDef* KernelRegistry::Find(const std::string& op_type, const std::string& domain,
                                      ir::DType dtype, const CpuFeatures& cpu,
                                      bool force_scalar) const {
  std::string want_domain = domain == "ai.onnx" ? "" : domain;
  const KernelDef* best = nullptr;
  for (const KernelDef& d : defs_) {
    if (op_type != d.op_type || want_domain != d.domain) continue;
    if (d.dtype != ir::DType::kUndefined && d.dtype != dtype) continue;
    if (force_scalar ? d.isa != Isa::kScalar : !cpu.Has(d.isa)) continue;
    // Prefer the most capable ISA; among equals, an exact dtype match over "any".
    if (!best || d.isa > best->isa ||
        (d.isa == best->isa && best->dtype == ir::DType::kUndefined &&
         d.dtype != ir::DType::kUndefined))
      best = &d;
  }
  return best;
}

std::vector<std::string> KernelRegistry::SupportedOps() const {
  std::set<std::string> ops;
  for (const KernelDef& d : defs_)
    ops.insert(std::string(d.domain).empty() ? d.op_type
                                             : std::string(d.domain) + "::" + d.op_type);
  return {ops.begin(), ops.end()};
}

}  // namespace edgepress::runtime
