#include "backend/cuda/cublaslt_library.h"

#if TERN_HAVE_CUDA
#include <dlfcn.h>

#include <string>

namespace tern::cuda {
namespace {

// TERN_CUBLASLT_PATH: the library CMake found at build time (cmake/cuda.cmake); the soname covers an
// installed binary whose toolkit moved (LD_LIBRARY_PATH, ld.so.conf).
constexpr const char* kCandidates[] = {
#ifdef TERN_CUBLASLT_PATH
    TERN_CUBLASLT_PATH,
#endif
#ifdef TERN_CUBLASLT_SONAME
    TERN_CUBLASLT_SONAME,
#endif
    "libcublasLt.so"};

template <class Fn>
Status resolve(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (!fn) return Status::error(std::string("cuBLASLt: symbol ") + name + " not found in the library");
  return Status::ok();
}

}  // namespace

CublasLtLibrary::~CublasLtLibrary() {
  if (handle_) dlclose(handle_);
}

Status CublasLtLibrary::open() {
  if (handle_) return Status::ok();
  std::string tried;
  for (const char* path : kCandidates) {
    if ((handle_ = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
      path_ = path;
      break;
    }
    tried += std::string(tried.empty() ? "" : "; ") + dlerror();
  }
  if (!handle_) return Status::error("cuBLASLt could not be opened (the CUDA backend needs it): " + tried);
  Status st = Status::ok();
  auto need = [&](const char* name, auto& fn) {
    if (st.is_ok()) st = resolve(handle_, name, fn);
  };
  need("cublasLtCreate", create);
  need("cublasLtDestroy", destroy);
  need("cublasLtMatmul", matmul);
  need("cublasLtMatmulAlgoGetHeuristic", algo_get_heuristic);
  need("cublasLtMatmulDescCreate", desc_create);
  need("cublasLtMatmulDescDestroy", desc_destroy);
  need("cublasLtMatmulDescSetAttribute", desc_set_attribute);
  need("cublasLtMatmulPreferenceCreate", preference_create);
  need("cublasLtMatmulPreferenceDestroy", preference_destroy);
  need("cublasLtMatmulPreferenceSetAttribute", preference_set_attribute);
  need("cublasLtMatrixLayoutCreate", layout_create);
  need("cublasLtMatrixLayoutDestroy", layout_destroy);
  if (!st.is_ok()) {
    dlclose(handle_);
    handle_ = nullptr;
    path_ = nullptr;
  }
  return st;
}

}  // namespace tern::cuda
#endif
