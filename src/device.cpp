#include "qsweep/device.h"

#include "qsweep/error.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#ifdef QSWEEP_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace qsweep {

at::Device choose_device(const std::string& want, int local_rank) {
  const int gpus = static_cast<int>(at::detail::getCUDAHooks().getNumGPUs());
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

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return at::kFloat;
  if (name == "fp16" || name == "float16") return at::kHalf;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  fail("dtype '{}' is not one of fp32, fp16, bf16", name);
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "fp32";
    case at::kHalf: return "fp16";
    case at::kBFloat16: return "bf16";
    default: return c10::toString(dtype);
  }
}

std::string device_description(const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  return device.str();
}

void synchronize(const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (device.is_cuda()) at::cuda::getCurrentCUDAStream(device.index()).synchronize();
#else
  (void)device;
#endif
}

}  // namespace qsweep
