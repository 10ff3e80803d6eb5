#include "backend/cuda/device.h"

#include <dlfcn.h>

#include <cstdio>

#if TERN_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace tern::cuda {

bool built_with_cuda() {
#if TERN_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

Result<DeviceInfo> probe_device(int index) {
#if TERN_HAVE_CUDA
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so a later CPU run is unaffected
    const ProbeFailure kind = e == cudaErrorInsufficientDriver ? ProbeFailure::kInsufficientDriver
                              : e == cudaErrorNoDevice         ? ProbeFailure::kNoDevice
                                                               : ProbeFailure::kOther;
    bool driver = false;
    if (void* lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
      driver = true;
      dlclose(lib);
    }
    return Status::error(describe_probe_failure(kind, cudaGetErrorString(e), driver));
  }
  if (count == 0) return Status::error(describe_probe_failure(ProbeFailure::kNoDevice, "no device", true));
  if (index < 0 || index >= count)
    return Status::error("no CUDA device " + std::to_string(index) + " (" + std::to_string(count) + " present)");
  cudaDeviceProp p{};
  if ((e = cudaGetDeviceProperties(&p, index)) != cudaSuccess || (e = cudaSetDevice(index)) != cudaSuccess)
    return Status::error(std::string("CUDA device ") + std::to_string(index) + ": " + cudaGetErrorString(e));
  DeviceInfo d;
  d.index = index;
  d.name = p.name;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  d.l2_bytes = size_t(p.l2CacheSize);
  d.smem_optin_bytes = p.sharedMemPerBlockOptin;
  if ((e = cudaMemGetInfo(&d.free_bytes, &d.total_bytes)) != cudaSuccess)
    return Status::error(std::string("CUDA device memory query: ") + cudaGetErrorString(e));
  if (d.cc_major < 8)
    return Status::error("CUDA device " + d.name + " is sm_" + std::to_string(d.cc_major * 10 + d.cc_minor) +
                         "; tern's kernels need sm_80 or newer");
  return d;
#else
  (void)index;
  return Status::error("no CUDA device: this tern was built without CUDA (TERN_CUDA=OFF)");
#endif
}

std::string describe_probe_failure(ProbeFailure kind, const std::string& cuda_message, bool driver_library_found) {
  if (!driver_library_found) return "no NVIDIA driver / GPU found (no libcuda.so.1 on this machine)";
  switch (kind) {
    case ProbeFailure::kInsufficientDriver:
      return "the NVIDIA driver is older than the CUDA runtime tern was built with (" + cuda_message +
             "): update the driver";
    case ProbeFailure::kNoDevice: return "no NVIDIA GPU found (the driver reports none)";
    case ProbeFailure::kOther: break;
  }
  return "no CUDA device: " + cuda_message;
}

std::string describe(const DeviceInfo& d) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.1f GiB)", d.name.c_str(), d.cc_major, d.cc_minor, d.sm_count,
                double(d.total_bytes) / double(1ull << 30));
  return buf;
}

}  // namespace tern::cuda
