# CUDA backend (issue 7). TERN_CUDA is ON by default when nvcc is found (/usr/local/cuda here and in CI).
# Kernels: src/kernels/cuda/*.cu -> static library tern_cuda_kernels (the only files nvcc compiles).
# Host side (src/backend/cuda/*.cpp) is globbed into tern_lib like every other source and compiles its
# CUDA calls only under TERN_HAVE_CUDA, so a build without nvcc still links and reports "built without CUDA".
# cudart is linked statically (a binary starts on a machine without a driver: cudaGetDeviceCount fails and
# tern stays on the CPU); cuBLASLt is opened at run time by the backend (src/backend/cuda/cublaslt_library.cpp),
# from the path found here or by its soname, so a CPU run does not carry its ~100 MiB of resident pages.
include(CheckLanguage)
if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "nvcc")
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  set(_tern_cuda_default ON)
else()
  set(_tern_cuda_default OFF)
endif()
option(TERN_CUDA "Build the CUDA backend (needs nvcc)" ${_tern_cuda_default})

if(TERN_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "TERN_CUDA=ON but no CUDA compiler was found")
  endif()
  # Explicit -gencode flags instead of CMAKE_CUDA_ARCHITECTURES: sm_90a SASS (wgmma/setmaxnreg capable)
  # for Hopper plus compute_80 PTX that the driver JIT-compiles on any other card from Ampere on.
  set(CMAKE_CUDA_ARCHITECTURES OFF)
  # Reuse the C++ compiler cache for nvcc (ccache understands nvcc), so CI recompiles kernels only on change.
  if(CMAKE_CXX_COMPILER_LAUNCHER AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${CMAKE_CXX_COMPILER_LAUNCHER})
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)

  file(GLOB TERN_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/kernels/cuda/*.cu)
  add_library(tern_cuda_kernels STATIC ${TERN_CUDA_SOURCES})
  target_include_directories(tern_cuda_kernels PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_compile_options(tern_cuda_kernels PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_80,code=compute_80
    --expt-relaxed-constexpr -Xcompiler=-fno-math-errno>)
  set_target_properties(tern_cuda_kernels PROPERTIES CUDA_RUNTIME_LIBRARY Static POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(tern_cuda_kernels PUBLIC CUDA::cudart_static)

  target_link_libraries(tern_lib PUBLIC tern_cuda_kernels CUDA::cudart_static ${CMAKE_DL_LIBS})
  target_compile_definitions(tern_lib PUBLIC TERN_HAVE_CUDA=1)
  # Only the loader's source sees where the library is (other sources keep their flags and cache hits).
  get_target_property(_tern_cublaslt CUDA::cublasLt IMPORTED_LOCATION)
  set(_tern_cublaslt_defs TERN_CUBLASLT_SONAME="libcublasLt.so.${CUDAToolkit_VERSION_MAJOR}")
  if(_tern_cublaslt)
    list(APPEND _tern_cublaslt_defs TERN_CUBLASLT_PATH="${_tern_cublaslt}")
  endif()
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/backend/cuda/cublaslt_library.cpp PROPERTIES
    COMPILE_DEFINITIONS "${_tern_cublaslt_defs}")
  list(APPEND CMAKE_INSTALL_RPATH ${CUDAToolkit_LIBRARY_DIR})
  message(STATUS "tern: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, sm_90a + compute_80 PTX)")
else()
  message(STATUS "tern: CUDA backend OFF (no nvcc); --device cuda reports that tern was built without CUDA")
endif()
