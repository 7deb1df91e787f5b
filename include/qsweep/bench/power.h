#pragma once
// Board power sampled in the background through NVML while a benchmark runs, and the energy of
// a timed interval from those samples. NVML is opened with dlopen, so builds and CPU runs need
// no NVIDIA library; there the sampler records nothing.
#include <ATen/core/Tensor.h>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

namespace qsweep {

struct PowerSample {
  double seconds = 0;              // steady_seconds() when the reading was taken
  double watts = 0;
};

// The steady clock in seconds: the time base of PowerSample, so that a timed region's host
// timestamps can be matched with the samples taken during it.
double steady_seconds();

class PowerSampler {
 public:
  explicit PowerSampler(const at::Device& device, int interval_ms = 10);
  ~PowerSampler();
  PowerSampler(const PowerSampler&) = delete;
  PowerSampler& operator=(const PowerSampler&) = delete;
  // Stops sampling and returns the samples (empty where NVML is unavailable).
  std::vector<PowerSample> stop();

 private:
  std::vector<PowerSample> samples_;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

// Joules over [begin, end] (steady seconds): the integral of the power curve that joins the
// samples by straight lines, held flat before the first and after the last one. nullopt without
// samples or for an empty interval.
std::optional<double> energy_joules(const std::vector<PowerSample>& samples, double begin,
                                    double end);

// The watts of the samples taken within [begin, end].
std::vector<double> watts_within(const std::vector<PowerSample>& samples, double begin, double end);

}  // namespace qsweep
