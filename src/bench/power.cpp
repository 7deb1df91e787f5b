#include "qsweep/bench/power.h"

#include "qsweep/util/log.h"

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

}  // namespace

PowerSampler::PowerSampler(const at::Device& device, int interval_ms) {
  Nvml::Handle handle = nvml_handle(device);
  if (!handle) return;
  running_ = true;
  thread_ = std::thread([this, handle, interval_ms] {
    while (running_) {
      unsigned int milliwatts = 0;
      if (nvml().power_usage(handle, &milliwatts) == 0) samples_.push_back(milliwatts / 1000.0);
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
  });
}

std::vector<double> PowerSampler::stop() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
  return samples_;
}

PowerSampler::~PowerSampler() { stop(); }

}  // namespace qsweep
