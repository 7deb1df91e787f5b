#include "qsweep/bench/bench.h"

#include "qsweep/bench/device.h"
#include "qsweep/bench/device_limits.h"
#include "qsweep/bench/power.h"
#include "qsweep/bench/work_counts.h"
#include "qsweep/eval/stats.h"
#ifdef QSWEEP_CUDA
#include "qsweep/kernels/launch_overlap.h"
#endif
#include "qsweep/model/engine.h"
#include "qsweep/util/dtype.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <optional>

namespace qsweep {
namespace {

at::Tensor random_ids(const Model& m, int64_t batch, int64_t length, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(m.config.vocab_size, {batch, length}, gen, at::kLong).to(m.device);
}

// A prefilled cache ready for `steps` greedy steps, decoded as generation decodes (a CUDA graph
// on a GPU, captured here) but with the next token fed back on the device, so the figure is the
// engine's, not the host loop's. Building it (prefill, capture) is never timed.
struct DecodeRun {
  KVCache cache;
  DecodeState state;
  std::optional<Decoder> decoder;

  DecodeRun(const Model& m, const at::Tensor& prompt, int steps) {
    const int64_t b = prompt.size(0), t = prompt.size(1);
    const auto on = at::TensorOptions().device(m.device).dtype(at::kLong);
    cache = make_kv_cache(m, b, t + steps);
    const at::Tensor logits = forward(m, prompt, at::ones({b, t}, on.dtype(at::kBool)),
                                      at::arange(t, on).expand({b, t}), cache, true);
    state = {logits.argmax(-1), at::full({b, 1}, t, on), at::full({b}, t, on)};
    decoder.emplace(m, cache, state);
  }
  void decode(int steps) {
    for (int s = 0; s < steps; ++s) decoder->step();
  }
};

// A timed region: its device time and its host start and end on the power samples' clock.
struct Timed {
  double ms = 0;
  double begin_s = 0, end_s = 0;
};

// `steps` decode steps after a prefill of `prompt`; only the steps are timed.
Timed timed_decode(const Model& m, const at::Tensor& prompt, int steps) {
  DecodeRun run(m, prompt, steps);
  synchronize(m.device);  // the host timestamps bound the steps only, not the prefill behind them
  Timed t;
  t.begin_s = steady_seconds();
  t.ms = time_ms(m.device, [&] { run.decode(steps); });
  t.end_s = steady_seconds();
  return t;
}

// A prefill into a fresh cache; allocating and zeroing the cache is not timed.
double timed_prefill(const Model& m, const at::Tensor& prompt) {
  const int64_t b = prompt.size(0), t = prompt.size(1);
  const auto on = at::TensorOptions().device(m.device).dtype(at::kLong);
  KVCache cache = make_kv_cache(m, b, t);
  const at::Tensor real = at::ones({b, t}, on.dtype(at::kBool));
  const at::Tensor positions = at::arange(t, on).expand({b, t});
  return time_ms(m.device, [&] { forward(m, prompt, real, positions, cache, true); });
}

double median(const std::vector<double>& samples) { return sample_stats(samples).median; }

BenchRecord describe(const Model& m, const std::string& config, const BenchOptions& o) {
  BenchRecord r;
  r.config = config;
  r.device = device_description(m.device);
  r.device_kind = m.device.is_cuda() ? "gpu" : "cpu";
  r.sync = m.device.is_cuda()
               ? "CUDA events recorded on the current stream before and after each timed region; "
                 "the host waits on the end event"
               : "steady clock around each timed region (CPU work is synchronous)";
  r.warmup = o.warmup;
  r.repeats = o.repeats;
  r.prefill_tokens = o.prefill_tokens;
  r.decode_tokens = o.decode_tokens;
  r.throughput_prompt_tokens = o.throughput_prompt_tokens;
  r.model_bytes = model_bytes(m);
  r.bits_per_weight = projection_bits_per_weight(m);
  const DeviceLimitSizes sizes = device_limit_sizes(m.device);
  r.copy_bytes = sizes.copy_bytes;
  r.matmul_size = sizes.matmul_size;
  r.method = fmt::format(
      "{} warmup + {} timed repeats of each measurement. Yardsticks: a {} MiB device-to-device "
      "copy (bytes read + written / time) and a {}^3 {} matrix multiply. Prefill: {} random "
      "tokens, batch 1, into a fresh cache, logits of the last token; only the forward pass "
      "timed. Decode: {} greedy steps after a 1-token prompt, batch 1, next token fed back on the "
      "device (CUDA graph on a GPU); prefill and graph capture untimed. Bandwidth: bytes read per "
      "step (weights, norms, gathered embedding rows, KV cache at each step's length) / step time. "
      "Throughput: batch b x {} steps after a {}-token prompt, steps timed only. Energy: NVML "
      "power every 10 ms during the timed decode steps, integrated over them.",
      o.warmup, o.repeats, r.copy_bytes >> 20, r.matmul_size, dtype_name(dtype_of(m.dtype)),
      o.prefill_tokens, o.decode_tokens, o.decode_tokens, o.throughput_prompt_tokens);
#ifdef QSWEEP_CUDA
  if (m.device.is_cuda())
    r.method += cuda::overlapped_launches()
                    ? " Kernels overlapped: each may start while the one before it finishes "
                      "(programmatic dependent launch; QSWEEP_PDL=0 turns it off)."
                    : " Kernels serialized (QSWEEP_PDL=0, or before compute capability 9.0).";
#endif
  return r;
}

void measure_device_limits(const Model& m, const BenchOptions& o, BenchRecord& r) {
  r.copy_bandwidth_gb_s = copy_bandwidth_gb_s(m.device, r.copy_bytes, o.warmup, o.repeats);
  r.matmul_tflop_s = matmul_tflop_s(m.device, m.dtype, r.matmul_size, o.warmup, o.repeats);
}

void measure_prefill(const Model& m, const BenchOptions& o, BenchRecord& r) {
  const at::Tensor prompt = random_ids(m, 1, o.prefill_tokens, o.seed);
  r.prefill_flops = prefill_flops(m, 1, o.prefill_tokens);
  r.prefill_ms = repeat_timed(o.warmup, o.repeats, [&] { return timed_prefill(m, prompt); });
  for (double ms : r.prefill_ms) r.prefill_tflop_s.push_back(r.prefill_flops / (ms * 1e9));
}

// Batch-1 latency, bandwidth and energy, all from the same timed steps. Power is sampled during
// them: with the step a single graph launch the sampling thread does not slow the host loop.
void measure_decode(const Model& m, const BenchOptions& o, BenchRecord& r) {
  const at::Tensor prompt = random_ids(m, 1, 1, o.seed + 1);
  const double bytes = decode_bytes(m, 1, prompt.size(1), o.decode_tokens);
  r.decode_bytes_per_step = bytes / o.decode_tokens;
  for (int i = 0; i < o.warmup; ++i) timed_decode(m, prompt, o.decode_tokens);
  PowerSampler power(m.device);
  std::vector<Timed> runs;
  for (int i = 0; i < o.repeats; ++i) runs.push_back(timed_decode(m, prompt, o.decode_tokens));
  const std::vector<PowerSample> samples = power.stop();
  for (const Timed& t : runs) {
    r.decode_ms_per_token.push_back(t.ms / o.decode_tokens);
    r.bandwidth_gb_s.push_back(bytes / (t.ms * 1e6));
    const std::vector<double> watts = watts_within(samples, t.begin_s, t.end_s);
    r.power_w.insert(r.power_w.end(), watts.begin(), watts.end());
    if (const auto joules = energy_joules(samples, t.begin_s, t.end_s))
      r.energy_j_per_token.push_back(*joules / o.decode_tokens);
  }
}

void measure_throughput(const Model& m, const BenchOptions& o, BenchRecord& r) {
  for (int b : o.batch_sizes) {
    const at::Tensor prompts = random_ids(m, b, o.throughput_prompt_tokens, o.seed + 2 + b);
    const std::vector<double> ms = repeat_timed(
        o.warmup, o.repeats, [&] { return timed_decode(m, prompts, o.decode_tokens).ms; });
    for (double t : ms) r.throughput_tokens_per_s[b].push_back(1000.0 * b * o.decode_tokens / t);
  }
}

}  // namespace

BenchRecord run_benchmark(const Model& m, const std::string& config, const BenchOptions& o) {
  c10::InferenceMode guard;
  BenchRecord r = describe(m, config, o);
  measure_device_limits(m, o, r);  // before the peak-memory reset: its buffers are not the model's
  reset_peak_memory(m.device);
  measure_prefill(m, o, r);
  measure_decode(m, o, r);
  measure_throughput(m, o, r);
  r.peak_memory_bytes = peak_memory_bytes(m.device);
  r.decode_fraction_of_copy_bandwidth = median(r.bandwidth_gb_s) / median(r.copy_bandwidth_gb_s);
  r.prefill_fraction_of_matmul_rate = median(r.prefill_tflop_s) / median(r.matmul_tflop_s);
  return r;
}

}  // namespace qsweep
