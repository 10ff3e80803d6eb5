#include "kernels/cpu/matmul_kernels.h"
namespace tern::cpu {
void gemv_avx512(const MatmulArgs& a, int64_t n0, int64_t n1) { gemv_scalar(a, n0, n1); }
void gemm_avx512(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) { gemm_scalar(ctx, thread, a, m0, m1, n0, n1); }
void gemm_avx512bf16(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) { gemm_scalar(ctx, thread, a, m0, m1, n0, n1); }
void gemm_amx(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) { gemm_scalar(ctx, thread, a, m0, m1, n0, n1); }
}
