// The inner loop of the small-m bf16 kernel (matmul_smallm_avx2.cpp) for M = 4, 5, 6 rows of x by
// 2 weight rows, in inline assembly: with intrinsics GCC rotates the 12 accumulators through the
// destructive FMA forms and spills a third of them every iteration (measured: ~55% of FMA peak).
// Registers: ymm0..ymm(2M-1) accumulators (acc[i][r] = ymm(2i + r)), ymm12/13 the two widened weight
// vectors, ymm14 one x vector, ymm15 the 0xffff0000 mask. Per 16 k: 2 weight loads + 2 reloads,
// 2M x loads, 4M FMAs.
#pragma once

#include <cstdint>

namespace tern::cpu {
namespace {

#define TERN_SM_STR2(v) #v
#define TERN_SM_STR(v) TERN_SM_STR2(v)
// x row i at byte offset 2 * r (+32 for the odd half): r walks the bf16 weight bytes, x is f32.
#define TERN_SM_FMA(i, off, a0, a1)                      \
  "vmovups " #off "(%[x" #i "],%[r],2), %%ymm14\n\t"     \
  "vfmadd231ps %%ymm12, %%ymm14, %%ymm" #a0 "\n\t"       \
  "vfmadd231ps %%ymm13, %%ymm14, %%ymm" #a1 "\n\t"
#define TERN_SM_STORE(a) "vmovups %%ymm" #a ", " TERN_SM_STR(a) "*32(%[out])\n\t"
#define TERN_SM_ZERO(a) "vxorps %%ymm" #a ", %%ymm" #a ", %%ymm" #a "\n\t"

#define TERN_SM_ROWS4(off) \
  TERN_SM_FMA(0, off, 0, 1) TERN_SM_FMA(1, off, 2, 3) TERN_SM_FMA(2, off, 4, 5) TERN_SM_FMA(3, off, 6, 7)
#define TERN_SM_ROWS5(off) TERN_SM_ROWS4(off) TERN_SM_FMA(4, off, 8, 9)
#define TERN_SM_ROWS6(off) TERN_SM_ROWS5(off) TERN_SM_FMA(5, off, 10, 11)
#define TERN_SM_ACC4(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7)
#define TERN_SM_ACC5(op) TERN_SM_ACC4(op) op(8) op(9)
#define TERN_SM_ACC6(op) TERN_SM_ACC5(op) op(10) op(11)

// One loop for M rows: weights from byte rb to re (multiples of 32) of rows w0, w1.
#define TERN_SM_LOOP(M)                                   \
  TERN_SM_ACC##M(TERN_SM_ZERO)                             \
  "vpbroadcastd %[mask], %%ymm15\n\t"                      \
  "cmp %[re], %[r]\n\t"                                    \
  "jge 2f\n\t"                                             \
  "1:\n\t"                                                 \
  "prefetcht0 (%[pf],%[r])\n\t"                            \
  "vmovdqu (%[w0],%[r]), %%ymm12\n\t"                      \
  "vmovdqu (%[w1],%[r]), %%ymm13\n\t"                      \
  "vpslld $16, %%ymm12, %%ymm12\n\t"                       \
  "vpslld $16, %%ymm13, %%ymm13\n\t"                       \
  TERN_SM_ROWS##M(0)                                       \
  "vpand (%[w0],%[r]), %%ymm15, %%ymm12\n\t"               \
  "vpand (%[w1],%[r]), %%ymm15, %%ymm13\n\t"               \
  TERN_SM_ROWS##M(32)                                      \
  "add $32, %[r]\n\t"                                      \
  "cmp %[re], %[r]\n\t"                                    \
  "jl 1b\n\t"                                              \
  "2:\n\t"                                                 \
  TERN_SM_ACC##M(TERN_SM_STORE)

// out[2i + r][0:8] = lane sums of acc[i][r] over the weight bytes [rb, re) of rows w0 and w1 (bf16, so
// inputs rb/2..re/2; re - rb a multiple of 32). x[i]: the start of row i of the permuted x.
// Every step also prefetches pf + r (one 32-byte step of some row another tile will need).
template <int M>
__attribute__((target("avx2,fma"))) inline void smallm_asm_loop(const float* const* x, const char* w0,
                                                                 const char* w1, const char* pf, int64_t rb, int64_t re,
                                                                 float* out) {
  static_assert(M >= 4 && M <= 6);
  const uint32_t mask = 0xffff0000u;
  int64_t r = rb;
  if constexpr (M == 4) {
    asm volatile(TERN_SM_LOOP(4)
                 : [r] "+r"(r)
                 : [x0] "r"(x[0]), [x1] "r"(x[1]), [x2] "r"(x[2]), [x3] "r"(x[3]), [w0] "r"(w0), [w1] "r"(w1), [pf] "r"(pf),
                   [re] "r"(re), [out] "r"(out), [mask] "m"(mask)
                 : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm12",
                   "xmm13", "xmm14", "xmm15");
  } else if constexpr (M == 5) {
    asm volatile(TERN_SM_LOOP(5)
                 : [r] "+r"(r)
                 : [x0] "r"(x[0]), [x1] "r"(x[1]), [x2] "r"(x[2]), [x3] "r"(x[3]), [x4] "r"(x[4]), [w0] "r"(w0),
                   [w1] "r"(w1), [pf] "r"(pf), [re] "r"(re), [out] "r"(out), [mask] "m"(mask)
                 : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                   "xmm12", "xmm13", "xmm14", "xmm15");
  } else {
    asm volatile(TERN_SM_LOOP(6)
                 : [r] "+r"(r)
                 : [x0] "r"(x[0]), [x1] "r"(x[1]), [x2] "r"(x[2]), [x3] "r"(x[3]), [x4] "r"(x[4]), [x5] "r"(x[5]),
                   [w0] "r"(w0), [w1] "r"(w1), [pf] "r"(pf), [re] "r"(re), [out] "r"(out), [mask] "m"(mask)
                 : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                   "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  }
}

#undef TERN_SM_LOOP
#undef TERN_SM_ACC6
#undef TERN_SM_ACC5
#undef TERN_SM_ACC4
#undef TERN_SM_ROWS6
#undef TERN_SM_ROWS5
#undef TERN_SM_ROWS4
#undef TERN_SM_ZERO
#undef TERN_SM_STORE
#undef TERN_SM_FMA
#undef TERN_SM_STR
#undef TERN_SM_STR2

}  // namespace
}  // namespace tern::cpu
