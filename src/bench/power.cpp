#include "qsweep/bench/power.h"

#include "qsweep/util/log.h"

#include <algorithm>
#include <chrono>
#include <dlfcn.h>

#ifdef QSWEEP_CUDA
#include <cuda_runtime_api.h>
#endif

namespace qsweep {
namespace {

// The few NVML entry points used, resolved at run time (signatures from nvml.h).
struct Nvml {
  using Handle = void*;
  int (*init)() = nullptr;
  int (*by_pci_bus_id)(const char*, Handle*) = nullptr;
  int (*power_usage)(Handle, unsigned int*) = nullptr;
  bool loaded = false;
};

const Nvml& nvml() {
  static const Nvml api = [] {
    Nvml n;
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return n;
    n.init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    n.by_pci_bus_id =
        reinterpret_cast<int (*)(const char*, Nvml::Handle*)>(dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
    n.power_usage =
        reinterpret_cast<int (*)(Nvml::Handle, unsigned int*)>(dlsym(lib, "nvmlDeviceGetPowerUsage"));
    n.loaded = n.init && n.by_pci_bus_id && n.power_usage && n.init() == 0;
    return n;
  }();
  return api;
}

// NVML numbers GPUs differently from CUDA under CUDA_VISIBLE_DEVICES; the PCI bus id is shared.
Nvml::Handle nvml_handle(const at::Device& device) {
#ifdef QSWEEP_CUDA
  if (!device.is_cuda() || !nvml().loaded) return nullptr;
  char bus_id[32] = {};
  if (cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, device.index()) != cudaSuccess) return nullptr;
  Nvml::Handle handle = nullptr;
  return nvml().by_pci_bus_id(bus_id, &handle) == 0 ? handle : nullptr;
#else
  (void)device;
  return nullptr;
#endif
}

// Watts at time t on the line through the samples around it (flat outside them).
double watts_at(const std::vector<PowerSample>& s, double t) {
  if (t <= s.front().seconds) return s.front().watts;
  if (t >= s.back().seconds) return s.back().watts;
  const auto after = std::upper_bound(s.begin(), s.end(), t,
                                      [](double x, const PowerSample& p) { return x < p.seconds; });
  const PowerSample& a = *(after - 1);
  const PowerSample& b = *after;
  return a.watts + (b.watts - a.watts) * (t - a.seconds) / (b.seconds - a.seconds);
}

}  // namespace

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::optional<double> energy_joules(const std::vector<PowerSample>& samples, double begin,
                                    double end) {
  if (samples.empty() || !(end > begin)) return std::nullopt;
  // Trapezoids between the interval's ends and every sample inside it.
  std::vector<double> times = {begin};
  for (const PowerSample& p : samples)
    if (p.seconds > begin && p.seconds < end) times.push_back(p.seconds);
  times.push_back(end);
  double joules = 0;
  for (size_t i = 1; i < times.size(); ++i)
    joules += 0.5 * (watts_at(samples, times[i - 1]) + watts_at(samples, times[i])) *
              (times[i] - times[i - 1]);
  return joules;
}

std::vector<double> watts_within(const std::vector<PowerSample>& samples, double begin, double end) {
  std::vector<double> watts;
  for (const PowerSample& p : samples)
    if (p.seconds >= begin && p.seconds <= end) watts.push_back(p.watts);
  return watts;
}

PowerSampler::PowerSampler(const at::Device& device, int interval_ms) {
  Nvml::Handle handle = nvml_handle(device);
  if (!handle) return;
  running_ = true;
  thread_ = std::thread([this, handle, interval_ms] {
    while (running_) {
      unsigned int milliwatts = 0;
      if (nvml().power_usage(handle, &milliwatts) == 0)
        samples_.push_back({steady_seconds(), milliwatts / 1000.0});
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
  });
}

std::vector<PowerSample> PowerSampler::stop() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
  return samples_;
}

PowerSampler::~PowerSampler() { stop(); }

}  // namespace qsweep
