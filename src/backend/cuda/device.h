// CUDA device discovery. Safe on any machine: a build without CUDA, a machine without a driver or
// without a GPU all give a Status ("no CUDA device: ..."), never an abort, so callers fall back to
// the CPU or print one line for --device cuda.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace tern::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability (9.0 = Hopper)
  int sm_count = 0;
  size_t total_bytes = 0, free_bytes = 0;
  size_t l2_bytes = 0;
  size_t smem_optin_bytes = 0;     // per-block shared memory after cudaFuncSetAttribute
};

// True when this binary has the CUDA backend compiled in (TERN_CUDA=ON).
bool built_with_cuda();
// Device `index` (sets it current for the calling thread).
Result<DeviceInfo> probe_device(int index = 0);
// One line for `tern info` / logs, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
std::string describe(const DeviceInfo& d);

}  // namespace tern::cuda
