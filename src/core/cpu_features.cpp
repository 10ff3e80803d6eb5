#include "core/cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tern {

namespace {
#if defined(__x86_64__)
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

bool request_amx_permission() {
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}
#endif
}  // namespace

CpuFeatures CpuFeatures::detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), f16c = c & (1u << 29), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  const bool tile_os = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const unsigned b7 = b, c7 = c, d7 = d;
  f.avx2 = ymm_os && (b7 & (1u << 5)) && fma && f16c;
  const bool avx512f = b7 & (1u << 16), avx512dq = b7 & (1u << 17), avx512bw = b7 & (1u << 30),
             avx512vl = b7 & (1u << 31);
  f.avx512 = f.avx2 && zmm_os && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512_vnni = f.avx512 && (c7 & (1u << 11));
  f.avx512_vbmi2 = f.avx512 && (c7 & (1u << 6));
  f.avx512_fp16 = f.avx512 && (d7 & (1u << 23));
  const bool amx_bf16 = d7 & (1u << 22), amx_tile = d7 & (1u << 24), amx_int8 = d7 & (1u << 25);
  unsigned a71 = 0, b71 = 0, c71 = 0, d71 = 0;
  __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71);
  f.avx512_bf16 = f.avx512 && (a71 & (1u << 5));
  f.avx_vnni = f.avx2 && (a71 & (1u << 4));
  if (f.avx512 && amx_tile && tile_os && request_amx_permission()) {
    f.amx_bf16 = amx_bf16;
    f.amx_int8 = amx_int8;
  }
#endif
  return f;
}

CpuFeatures CpuFeatures::capped(const std::string& level) const {
  CpuFeatures f = *this;
  const int rank = level == "scalar" ? 0 : level == "avx2" ? 1 : level == "avx512" ? 2 : level == "avx512bf16" ? 3 : 4;
  if (rank < 4) f.amx_bf16 = f.amx_int8 = false;
  if (rank < 3) f.avx512_bf16 = false;
  if (rank < 2) f.avx512 = f.avx512_vnni = f.avx512_vbmi2 = f.avx512_fp16 = f.avx512_bf16 = false;
  if (rank < 1) f.avx2 = f.avx_vnni = false;
  return f;
}

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2");
  add(avx512, "avx512");
  add(avx512_bf16, "avx512_bf16");
  add(avx512_fp16, "avx512_fp16");
  add(avx512_vnni, "avx512_vnni");
  add(avx512_vbmi2, "avx512_vbmi2");
  add(avx_vnni, "avx_vnni");
  add(amx_bf16, "amx_bf16");
  add(amx_int8, "amx_int8");
  return s.empty() ? "scalar" : s;
}

}  // namespace tern
