// What the CPU we run on can do, read once by cpuid (DESIGN.md principle 3: run-time dispatch).
// Kernels are built for every ISA level; ops pick the best one the host supports.
#pragma once

#include <string>

namespace tern {

struct CpuFeatures {
  bool avx2 = false;        // with FMA and F16C (all three or none, for our purposes)
  bool avx512 = false;      // F + BW + VL + DQ
  bool avx512_bf16 = false; // vdpbf16ps
  bool avx512_fp16 = false;
  bool avx512_vnni = false;
  bool avx512_vbmi2 = false;  // vpexpandb / vpexpandw (the sparse kernels' mask expansion)
  bool avx_vnni = false;
  bool amx_bf16 = false;    // tiles usable: CPU support *and* the kernel granted XTILEDATA
  bool amx_int8 = false;

  // Reads cpuid and asks the kernel for AMX tile permission (arch_prctl(ARCH_REQ_XCOMP_PERM)).
  static CpuFeatures detect();

  // The same features with everything above `level` switched off: "scalar", "avx2", "avx512",
  // "avx512bf16", "amx". Used by tests and benchmarks to exercise the fallback paths.
  CpuFeatures capped(const std::string& level) const;

  std::string describe() const;  // e.g. "avx2 fma f16c avx512 avx512_bf16 amx_bf16"
};

}  // namespace tern
