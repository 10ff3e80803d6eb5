# MPI (issue 17): TERN_MPI is ON by default when find_package(MPI) finds a C MPI (OpenMPI from Debian:
# libopenmpi-dev, installed by scripts/setup). ON defines TERN_HAVE_MPI and links MPI into tern_lib;
# OFF (or not found) builds src/parallel/mpi_communicator.cpp as a stub whose open_mpi_communicator()
# says tern was built without MPI, so `--tp 2` is a one-line error rather than a missing option.
# NCCL (GPU collectives) is compiled only in CUDA builds, and only when nccl.h and libnccl are found
# (/usr/local/cuda ships them); it defines TERN_HAVE_NCCL.
find_package(MPI COMPONENTS C QUIET)
option(TERN_MPI "Build the MPI communicator (tensor parallelism over processes)" ${MPI_C_FOUND})
if(TERN_MPI)
  if(NOT MPI_C_FOUND)
    message(FATAL_ERROR "TERN_MPI=ON but no MPI was found (install libopenmpi-dev)")
  endif()
  # PRIVATE: only src/parallel/mpi_communicator.cpp includes mpi.h; nothing above tern_lib sees MPI's
  # headers or the define (mpi_available() answers at run time), so its flags do not change theirs.
  target_link_libraries(tern_lib PRIVATE MPI::MPI_C)
  target_compile_definitions(tern_lib PRIVATE TERN_HAVE_MPI=1)
  find_program(TERN_MPIEXEC NAMES mpirun mpiexec HINTS ${MPI_HOME}/bin)
  message(STATUS "tern: MPI ON (${MPI_C_LIBRARY_VERSION_STRING})")
else()
  set(TERN_MPIEXEC "")
  message(STATUS "tern: MPI OFF; --tp/--pp report that tern was built without MPI")
endif()

if(TERN_CUDA)
  find_path(TERN_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(TERN_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib /usr/local/cuda/lib64)
  if(TERN_NCCL_INCLUDE AND TERN_NCCL_LIBRARY)
    target_include_directories(tern_lib PRIVATE ${TERN_NCCL_INCLUDE})
    target_link_libraries(tern_lib PRIVATE ${TERN_NCCL_LIBRARY})
    target_compile_definitions(tern_lib PRIVATE TERN_HAVE_NCCL=1)
    message(STATUS "tern: NCCL ON (${TERN_NCCL_LIBRARY})")
  else()
    message(STATUS "tern: NCCL not found; the NCCL communicator is not built")
  endif()
endif()
