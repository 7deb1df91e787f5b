#pragma once
// CUDA runtime calls return a status: QSWEEP_CUDA_CHECK turns a failure into a DeviceError that
// names the call and file:line, so the unit fails, is recorded, and the rank leaves the sweep.
// Kernels launch on the current stream through launch() (src/kernels/kernel_util.cuh), which
// checks cudaLaunchKernelEx's status: neither syncs nor allocates, so a decode step that uses
// them still replays as a graph.
#include <cuda_runtime_api.h>

namespace qsweep {
[[noreturn]] void cuda_failed(cudaError_t status, const char* call, const char* file, int line);
}

#define QSWEEP_CUDA_CHECK(call)                                                         \
  do {                                                                                  \
    const cudaError_t qsweep_cuda_status = (call);                                      \
    if (qsweep_cuda_status != cudaSuccess)                                              \
      ::qsweep::cuda_failed(qsweep_cuda_status, #call, __FILE__, __LINE__);             \
  } while (0)
