#pragma once
// The device's own limits, measured in the same benchmark run as the model: the rate of a large
// device-to-device copy and of a large matrix multiply. Decode bandwidth and prefill FLOP rate
// are reported as fractions of these, so a figure carries its own yardstick from the same GPU,
// clocks and driver.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace qsweep {

struct DeviceLimitSizes {
  int64_t copy_bytes = 0;          // bytes of the buffer copied (read once, written once)
  int64_t matmul_size = 0;         // n of the n x n x n matrix multiply
};

// What the device can hold and time meaningfully: 1 GiB and n = 8192 on a GPU; 64 MiB and
// n = 512 on a CPU, whose figures are labelled as such.
DeviceLimitSizes device_limit_sizes(const at::Device& device);

// Repeats `run`, which returns the milliseconds of its timed region, warmup + repeats times and
// returns the timed repeats' results.
std::vector<double> repeat_timed(int warmup, int repeats, const std::function<double()>& run);

// GB/s of copying `bytes` into a second buffer, counting the bytes read and the bytes written
// (2 x bytes per copy), one sample per timed repeat.
std::vector<double> copy_bandwidth_gb_s(const at::Device& device, int64_t bytes, int warmup,
                                        int repeats);

// TFLOP/s (2 n^3 per multiply) of an n x n by n x n matrix multiply in `dtype`, one sample per
// timed repeat.
std::vector<double> matmul_tflop_s(const at::Device& device, at::ScalarType dtype, int64_t n,
                                   int warmup, int repeats);

}  // namespace qsweep
