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
// Why cudaGetDeviceCount failed, in words a user can act on. The runtime reports "CUDA driver version
// is insufficient" both for an old driver and for no driver at all (no libcuda.so.1 to load), which is
// simply a machine without an NVIDIA GPU: driver_library_found tells the two apart.
enum class ProbeFailure { kInsufficientDriver, kNoDevice, kOther };
std::string describe_probe_failure(ProbeFailure kind, const std::string& cuda_message, bool driver_library_found);

// One line for `tern info` / logs, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
std::string describe(const DeviceInfo& d);

}  // namespace tern::cuda
