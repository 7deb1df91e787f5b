#pragma once
// Which device a rank computes on, and the few device facts the sweep records.
#include <ATen/core/Tensor.h>

#include <string>

namespace qsweep {

// "auto" (the GPU of this node-local rank if any, else CPU), "cpu", "cuda" or "cuda:N".
// CUDA_VISIBLE_DEVICES is honoured by the CUDA runtime itself.
at::Device choose_device(const std::string& want, int local_rank);

// "fp32" | "fp16" | "bf16" (also "float32", "float16", "bfloat16").
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(at::ScalarType dtype);

// e.g. "NVIDIA H100 80GB HBM3" or "cpu".
std::string device_description(const at::Device& device);

// Waits for queued work on the device (no-op on CPU).
void synchronize(const at::Device& device);

}  // namespace qsweep
