// cuBLASLt opened at run time (dlopen) by the CUDA backend, only when a GPU step needs it. Linking it
// into the binary cost every CPU run ~60-150 MiB of resident memory (the 540 MB library's relocated
// data and pages touched by its constructors) for a GPU it never uses; `tern run` on a GGUF Q8_0 1B
// held more than llama.cpp on the same file (issue 20 item 5). One object per user (LtGemm); dlopen
// counts references, so a second one costs nothing.
#pragma once

#include "core/status.h"

#if TERN_HAVE_CUDA
#include <cublasLt.h>

namespace tern::cuda {

class CublasLtLibrary {
 public:
  CublasLtLibrary() = default;
  ~CublasLtLibrary();
  CublasLtLibrary(const CublasLtLibrary&) = delete;
  CublasLtLibrary& operator=(const CublasLtLibrary&) = delete;

  // Opens the library (the build's own copy first, then the soname on the loader's search path) and
  // resolves every entry point below; an error names the library or the missing symbol.
  Status open();
  bool is_open() const { return handle_ != nullptr; }
  // Where it was opened from (for messages and the test).
  const char* path() const { return path_; }

  decltype(&::cublasLtCreate) create = nullptr;
  decltype(&::cublasLtDestroy) destroy = nullptr;
  decltype(&::cublasLtMatmul) matmul = nullptr;
  decltype(&::cublasLtMatmulAlgoGetHeuristic) algo_get_heuristic = nullptr;
  decltype(&::cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&::cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&::cublasLtMatmulDescSetAttribute) desc_set_attribute = nullptr;
  decltype(&::cublasLtMatmulPreferenceCreate) preference_create = nullptr;
  decltype(&::cublasLtMatmulPreferenceDestroy) preference_destroy = nullptr;
  decltype(&::cublasLtMatmulPreferenceSetAttribute) preference_set_attribute = nullptr;
  decltype(&::cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&::cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;

 private:
  void* handle_ = nullptr;
  const char* path_ = nullptr;
};

}  // namespace tern::cuda
#endif
