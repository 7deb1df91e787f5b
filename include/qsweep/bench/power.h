#pragma once
// Board power sampled in the background through NVML while a benchmark runs. NVML is opened
// with dlopen, so builds and CPU runs need no NVIDIA library; there the sampler records nothing.
#include <ATen/core/Tensor.h>

#include <atomic>
#include <thread>
#include <vector>

namespace qsweep {

class PowerSampler {
 public:
  explicit PowerSampler(const at::Device& device, int interval_ms = 10);
  ~PowerSampler();
  PowerSampler(const PowerSampler&) = delete;
  PowerSampler& operator=(const PowerSampler&) = delete;
  // Stops sampling and returns the samples in watts (empty where NVML is unavailable).
  std::vector<double> stop();

 private:
  std::vector<double> samples_;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace qsweep
