#pragma once
// How much memory a device can still hand out: what the KV cache and the dequantized-weight
// cache are checked against before they are allocated.
#include <c10/core/Device.h>

#include <cstdint>

namespace qsweep {

// Free GPU memory, or the host's MemAvailable on the CPU (the largest int64 where the host does
// not say).
int64_t available_memory_bytes(const c10::Device& device);

}  // namespace qsweep
