#pragma once
// Which device a rank computes on, and the few device facts the sweep records.
#include "qsweep/model/device_memory.h"  // available_memory_bytes

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

namespace qsweep {

// "auto" (the GPU of this node-local rank if any, else CPU), "cpu", "cuda" or "cuda:N".
// CUDA_VISIBLE_DEVICES is honoured by the CUDA runtime itself.
at::Device choose_device(const std::string& want, int local_rank);

// GPUs this process can see (0 in a CPU-only build).
int visible_gpus();

// e.g. "NVIDIA H100 80GB HBM3" or "cpu".
std::string device_description(const at::Device& device);

// "libtorch 2.11.0, CUDA 13.0, driver 580.159.04" (CUDA parts only where built with CUDA).
std::string runtime_versions();

// A KV cache of `bytes` must fit in what the device has available; else fails naming what was
// asked for (`asked`, e.g. "--batch-size 8 with --max-new-tokens 1000000") and the sizes, up
// front rather than as an allocation failure deep in libtorch.
void check_kv_cache_fits(int64_t bytes, const at::Device& device, const std::string& asked);

// Waits for queued work on the device (no-op on CPU).
void synchronize(const at::Device& device);

// Throws DeviceError when the device's context holds a sticky error (an illegal address, a
// kernel fault): what tells a rank that failed a unit whether it can still take others.
void check_device_usable(const at::Device& device);

}  // namespace qsweep

namespace qsweep {

// Milliseconds that `work` takes on the device: CUDA events around it on a GPU (then a sync),
// a steady clock on the CPU.
double time_ms(const at::Device& device, const std::function<void()>& work);

// Peak bytes allocated on the device since the last reset (CPU: the process's max RSS, which
// cannot be reset).
void reset_peak_memory(const at::Device& device);
int64_t peak_memory_bytes(const at::Device& device);

}  // namespace qsweep
