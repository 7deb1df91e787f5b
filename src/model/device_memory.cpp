#include "qsweep/model/device_memory.h"

#include "qsweep/util/error.h"

#include <fstream>
#include <limits>
#include <string>

#ifdef QSWEEP_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace qsweep {

int64_t available_memory_bytes(const c10::Device& device) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) {
    size_t free = 0, total = 0;
    const c10::cuda::CUDAGuard guard(device.index());
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) fail("{}: cudaMemGetInfo failed", device.str());
    return static_cast<int64_t>(free);
  }
#else
  (void)device;
#endif
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return std::numeric_limits<int64_t>::max();
}

}  // namespace qsweep
