#include "qsweep/bench/bench.h"

#include "qsweep/bench/device.h"
#include "qsweep/model/engine.h"
#include "qsweep/bench/power.h"

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

// Decoding after a prefill of `prompt`, as generation runs it (a CUDA graph on a GPU) but with
// the next token fed back on the device, so the figure is the engine's, not the host loop's.
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
    if (steps > 0) decoder.emplace(m, cache, state);
  }
  void decode(int steps) {
    for (int s = 0; s < steps; ++s) decoder->step();
  }
};

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
  r.bits_per_weight = projection_bits_per_weight(m);
  r.method = fmt::format(
      "{} warmup + {} timed repeats each; {}; prefill: {} random tokens, batch 1, logits of the "
      "last token; decode: {} greedy steps after a 1-token prompt, batch 1, next token fed back "
      "on the device (CUDA graph on a GPU), steps only; power: NVML every 10 ms over as many "
      "untimed decode runs; throughput: batch b x {} new tokens / time of {}-token prefill + "
      "graph capture + decode",
      o.warmup, o.repeats, m.device.is_cuda() ? "CUDA events around each repeat" : "steady clock",
      o.prefill_tokens, o.decode_tokens, o.decode_tokens, o.throughput_prompt_tokens);
  reset_peak_memory(m.device);

  const at::Tensor long_prompt = random_ids(m, 1, o.prefill_tokens, o.seed);
  r.prefill_ms = timed(m, o, [&] { DecodeRun(m, long_prompt, 0); });

  // Decode latency: only the steps are timed (each repeat on a fresh cache and graph).
  const at::Tensor one_token = random_ids(m, 1, 1, o.seed + 1);
  auto decode_ms = [&] {
    DecodeRun run(m, one_token, o.decode_tokens);
    return time_ms(m.device, [&] { run.decode(o.decode_tokens); });
  };
  for (int i = 0; i < o.warmup; ++i) decode_ms();
  for (int i = 0; i < o.repeats; ++i) {
    const double per_token = decode_ms() / o.decode_tokens;
    r.decode_ms_per_token.push_back(per_token);
    // Every decode step reads all weights once: bytes / time is the bandwidth actually achieved.
    r.bandwidth_gb_s.push_back(static_cast<double>(r.model_bytes) / (per_token * 1e6));
  }
  // Power is sampled over separate decode runs: polling NVML during the timed ones slows the
  // host and so the figure being measured.
  PowerSampler power(m.device);
  for (int i = 0; i < o.repeats; ++i) decode_ms();
  r.power_w = power.stop();

  // Throughput as a user sees it: prefill, graph capture and decode, end to end.
  for (int b : o.batch_sizes) {
    const at::Tensor prompts = random_ids(m, b, o.throughput_prompt_tokens, o.seed + 2 + b);
    for (double ms : timed(m, o, [&] { DecodeRun(m, prompts, o.decode_tokens).decode(o.decode_tokens); }))
      r.throughput_tokens_per_s[b].push_back(1000.0 * b * o.decode_tokens / ms);
  }
  r.peak_memory_bytes = peak_memory_bytes(m.device);
  return r;
}

}  // namespace qsweep
