#include "qsweep/bench/device_limits.h"

#include "qsweep/bench/device.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace qsweep {

DeviceLimitSizes device_limit_sizes(const at::Device& device) {
  // Large enough that launch latency vanishes against the transfer on a GPU (1 GiB takes some
  // 0.5 ms at 4 TB/s) and that the copy cannot sit in any cache; small on a CPU, where the
  // benchmark runs in tests and demos.
  if (device.is_cuda()) return {int64_t{1} << 30, 8192};
  return {int64_t{64} << 20, 512};
}

std::vector<double> repeat_timed(int warmup, int repeats, const std::function<double()>& run) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) ms.push_back(run());
  return ms;
}

std::vector<double> copy_bandwidth_gb_s(const at::Device& device, int64_t bytes, int warmup,
                                        int repeats) {
  const auto options = at::TensorOptions().device(device).dtype(at::kByte);
  const at::Tensor from = at::ones({bytes}, options);
  at::Tensor to = at::empty({bytes}, options);
  std::vector<double> rates;
  for (double ms : repeat_timed(warmup, repeats, [&] { return time_ms(device, [&] { to.copy_(from); }); }))
    rates.push_back(2.0 * static_cast<double>(bytes) / (ms * 1e6));
  return rates;
}

std::vector<double> matmul_tflop_s(const at::Device& device, at::ScalarType dtype, int64_t n,
                                   int warmup, int repeats) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  const auto options = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor a = at::randn({n, n}, gen, options).to(device, dtype);
  const at::Tensor b = at::randn({n, n}, gen, options).to(device, dtype);
  at::Tensor c = at::empty({n, n}, a.options());
  std::vector<double> rates;
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  for (double ms : repeat_timed(warmup, repeats, [&] { return time_ms(device, [&] { at::mm_out(c, a, b); }); }))
    rates.push_back(flops / (ms * 1e9));
  return rates;
}

}  // namespace qsweep
