#include "qsweep/bench.h"

#include "qsweep/device.h"
#include "qsweep/engine.h"
#include "qsweep/power.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>


namespace qsweep {
namespace {

at::Tensor random_ids(const Model& m, int64_t batch, int64_t length, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(m.config.vocab_size, {batch, length}, gen, at::kLong).to(m.device);
}

// Prefill of `prompt` followed by `steps` greedy decode steps, all on the device: the next token
// is fed back without a host round trip, so the figure is the engine's, not the host loop's.
void prefill_and_decode(const Model& m, const at::Tensor& prompt, int steps) {
  const int64_t b = prompt.size(0), t = prompt.size(1);
  const auto on = at::TensorOptions().device(m.device);
  KVCache cache = make_kv_cache(m, b, t + steps);
  at::Tensor logits = forward(m, prompt, at::ones({b, t}, on.dtype(at::kBool)),
                              at::arange(t, on.dtype(at::kLong)).expand({b, t}), cache, true);
  const at::Tensor real = at::ones({b, 1}, on.dtype(at::kBool));
  for (int s = 0; s < steps; ++s) {
    const at::Tensor pos = at::full({b, 1}, t + s, on.dtype(at::kLong));
    logits = forward(m, logits.argmax(-1), real, pos, cache, true);
  }
}

// Runs `work` warmup + repeats times and returns the timed repeats in milliseconds.
std::vector<double> timed(const Model& m, const BenchOptions& o, const std::function<void()>& work) {
  for (int i = 0; i < o.warmup; ++i) time_ms(m.device, work);
  std::vector<double> ms;
  for (int i = 0; i < o.repeats; ++i) ms.push_back(time_ms(m.device, work));
  return ms;
}

}  // namespace

BenchRecord run_benchmark(const Model& m, const std::string& config, const BenchOptions& o) {
  c10::InferenceMode guard;
  BenchRecord r;
  r.config = config;
  r.device = device_description(m.device);
  r.model_bytes = model_bytes(m);
  r.method = fmt::format(
      "{} warmup + {} timed repeats each; {}; prefill: {} random tokens, batch 1, logits of the "
      "last token; decode: {} greedy steps after a 1-token prompt, batch 1, next token fed back "
      "on the device; throughput: batch b x {} new tokens / time of {}-token prefill + decode",
      o.warmup, o.repeats, m.device.is_cuda() ? "CUDA events around each repeat" : "steady clock",
      o.prefill_tokens, o.decode_tokens, o.decode_tokens, o.throughput_prompt_tokens);
  reset_peak_memory(m.device);

  const at::Tensor long_prompt = random_ids(m, 1, o.prefill_tokens, o.seed);
  r.prefill_ms = timed(m, o, [&] { prefill_and_decode(m, long_prompt, 0); });

  const at::Tensor one_token = random_ids(m, 1, 1, o.seed + 1);
  PowerSampler power(m.device);
  for (double ms : timed(m, o, [&] { prefill_and_decode(m, one_token, o.decode_tokens); })) {
    const double per_token = ms / o.decode_tokens;
    r.decode_ms_per_token.push_back(per_token);
    // Every decode step reads all weights once: bytes / time is the bandwidth actually achieved.
    r.bandwidth_gb_s.push_back(static_cast<double>(r.model_bytes) / (per_token * 1e6));
  }
  r.power_w = power.stop();

  for (int b : o.batch_sizes) {
    const at::Tensor prompts = random_ids(m, b, o.throughput_prompt_tokens, o.seed + 2 + b);
    for (double ms : timed(m, o, [&] { prefill_and_decode(m, prompts, o.decode_tokens); }))
      r.throughput_tokens_per_s[b].push_back(1000.0 * b * o.decode_tokens / ms);
  }
  r.peak_memory_bytes = peak_memory_bytes(m.device);
  return r;
}

}  // namespace qsweep
