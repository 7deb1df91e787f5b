#include "qsweep/bench/device.h"

#include "qsweep/util/error.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <torch/version.h>

#include <chrono>
#include <sys/resource.h>

#ifdef QSWEEP_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace qsweep {

int visible_gpus() { return static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()); }

at::Device choose_device(const std::string& want, int local_rank) {
  const int gpus = visible_gpus();
  if (want == "cpu") return at::kCPU;
  if (want == "auto") return gpus > 0 ? at::Device(at::kCUDA, local_rank % gpus) : at::kCPU;
  if (want.rfind("cuda", 0) == 0) {
    if (gpus == 0)
      fail("device '{}' was asked for but this libtorch sees no GPU (CPU-only build, or "
           "CUDA_VISIBLE_DEVICES empty); use device 'cpu' or 'auto'", want);
    const int index = want.size() > 5 ? std::stoi(want.substr(5)) : local_rank % gpus;
    if (index >= gpus) fail("device '{}': only {} GPU(s) visible", want, gpus);
    return at::Device(at::kCUDA, index);
  }
  fail("device '{}' is not one of auto, cpu, cuda, cuda:N", want);
}

std::string device_description(const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  return device.str();
}

std::string runtime_versions() {
  std::string text = "libtorch " TORCH_VERSION;
#ifdef QSWEEP_CUDA
  int driver = 0;
  cudaDriverGetVersion(&driver);
  text += fmt::format(", CUDA runtime {}.{}, driver API {}.{}", CUDART_VERSION / 1000,
                      CUDART_VERSION % 1000 / 10, driver / 1000, driver % 1000 / 10);
#endif
  return text;
}

void check_kv_cache_fits(int64_t bytes, const at::Device& device, const std::string& asked) {
  const int64_t available = available_memory_bytes(device);
  if (bytes > available)
    fail("{}: the KV cache alone would need {:.1f} GiB but {} has {:.1f} GiB available; ask for "
         "fewer tokens or a smaller batch",
         asked, bytes / double(1 << 30), device.str(), available / double(1 << 30));
}

void check_device_usable([[maybe_unused]] const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (!device.is_cuda()) return;
  // A sticky error is returned by every later call; a synchronize both waits and reports it.
  const cudaError_t status = cudaDeviceSynchronize();
  if (status != cudaSuccess)
    throw DeviceError(fmt::format("{} is unusable: {}", device.str(), cudaGetErrorString(status)));
#endif
}

void synchronize(const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) at::cuda::getCurrentCUDAStream(device.index()).synchronize();
#else
  (void)device;
#endif
}

double time_ms(const at::Device& device, const std::function<void()>& work) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    const auto stream = at::cuda::getCurrentCUDAStream(device.index());
    start.record(stream);
    work();
    stop.record(stream);
    stop.synchronize();
    return start.elapsed_time(stop);
  }
#endif
  (void)device;
  const auto begin = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
}

void reset_peak_memory(const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#else
  (void)device;
#endif
}

int64_t peak_memory_bytes(const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[0].peak;  // index 0: all pools together
  }
#else
  (void)device;
#endif
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace qsweep
