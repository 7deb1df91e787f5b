#pragma once
// Helpers shared by the GPU suites (label "gpu"), which skip, visibly, where libtorch sees no GPU.
#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>

inline bool have_gpu() { return at::detail::getCUDAHooks().getNumGPUs() > 0; }

inline const at::Device kGpu("cuda:0");

// ||got - ref|| / ||ref||, in float64 on the CPU: the relative error the kernel tolerances bound.
inline double rel_err(const at::Tensor& got, const at::Tensor& ref) {
  const at::Tensor g = got.to(at::kCPU, at::kDouble), r = ref.to(at::kCPU, at::kDouble);
  return (g - r).norm().item<double>() / std::max(r.norm().item<double>(), 1e-30);
}
