#include "backend/cuda/cublaslt_gemm.h"

#if TERN_HAVE_CUDA
#include <string>

namespace tern::cuda {
namespace {

Status lt_error(const char* what, cublasStatus_t st) {
  return Status::error(std::string("cuBLASLt ") + what + ": status " + std::to_string(int(st)));
}

// RAII for the per-call descriptors (cheap host objects; the heuristic result could be cached per
// shape, left for the GPU tuning session).
struct Descs {
  const CublasLtLibrary& lt;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descs() {
    if (pref) lt.preference_destroy(pref);
    if (c) lt.layout_destroy(c);
    if (b) lt.layout_destroy(b);
    if (a) lt.layout_destroy(a);
    if (op) lt.desc_destroy(op);
  }
};

}  // namespace

LtGemm::~LtGemm() {
  if (handle_) lt_.destroy(static_cast<cublasLtHandle_t>(handle_));
}

Status LtGemm::init(void* workspace, size_t workspace_bytes) {
  TERN_RETURN_IF_ERROR(lt_.open());
  cublasLtHandle_t h = nullptr;
  if (cublasStatus_t st = lt_.create(&h); st != CUBLAS_STATUS_SUCCESS) return lt_error("create", st);
  handle_ = h;
  workspace_ = workspace;
  workspace_bytes_ = workspace_bytes;
  return Status::ok();
}

Status LtGemm::gemm(const uint16_t* x, const uint16_t* w, float* y, int64_t m, int64_t n, int64_t k, bool accumulate,
                    cudaStream_t s) {
  Descs d{lt_};
  cublasStatus_t st;
  if ((st = lt_.desc_create(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F)) != CUBLAS_STATUS_SUCCESS)
    return lt_error("matmul desc", st);
  const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
  lt_.desc_set_attribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT);
  lt_.desc_set_attribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN);
  // Column-major: A = W stored [k, n] (ld k, transposed to n x k), B = X stored [k, m], C = Y stored [n, m].
  if ((st = lt_.layout_create(&d.a, CUDA_R_16BF, uint64_t(k), uint64_t(n), k)) != CUBLAS_STATUS_SUCCESS ||
      (st = lt_.layout_create(&d.b, CUDA_R_16BF, uint64_t(k), uint64_t(m), k)) != CUBLAS_STATUS_SUCCESS ||
      (st = lt_.layout_create(&d.c, CUDA_R_32F, uint64_t(n), uint64_t(m), n)) != CUBLAS_STATUS_SUCCESS)
    return lt_error("layout", st);
  if ((st = lt_.preference_create(&d.pref)) != CUBLAS_STATUS_SUCCESS) return lt_error("preference", st);
  lt_.preference_set_attribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                       sizeof workspace_bytes_);
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  auto h = static_cast<cublasLtHandle_t>(handle_);
  if ((st = lt_.algo_get_heuristic(h, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &heur, &found)) !=
          CUBLAS_STATUS_SUCCESS ||
      found == 0)
    return lt_error("no algorithm for this shape", st);
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  if ((st = lt_.matmul(h, d.op, &alpha, w, d.a, x, d.b, &beta, y, d.c, y, d.c, &heur.algo, workspace_,
                           workspace_bytes_, s)) != CUBLAS_STATUS_SUCCESS)
    return lt_error("matmul", st);
  return Status::ok();
}

}  // namespace tern::cuda
#endif
