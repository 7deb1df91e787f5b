// qsweep bench: the benchmark unit of a sweep on one model and dtype, as JSON (raw samples, their
// statistics and the fractions of the device's own copy bandwidth and matmul rate), so a figure
// can be reproduced without a sweep.
#include "cli.h"
#include "qsweep/bench/bench.h"
#include "qsweep/bench/device.h"
#include "qsweep/util/log.h"
#include "qsweep/model/model.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/util/results_json.h"
#include "qsweep/eval/stats.h"
#include "qsweep/util/text.h"

#include <iostream>

namespace qsweep::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::string dtype = "auto";
  std::string device = "auto";
  std::string out;
  BenchOptions options;
};

nlohmann::json stats_json(const std::vector<double>& samples) {
  const SampleStats s = sample_stats(samples);
  return {{"n", s.n},       {"mean", s.mean}, {"median", s.median}, {"p90", s.p90},
          {"p99", s.p99},   {"stdev", s.stdev}, {"min", s.min},     {"max", s.max}};
}

void run(const BenchArgs& a) {
  const at::Device device = choose_device(a.device, 0);
  const DType dtype = compute_dtype(a.dtype, load_model_config(a.model).torch_dtype, device.is_cuda());
  Model m = load_model(a.model, {dtype, device});
  stack_projections(m);
  const BenchRecord r = run_benchmark(m, dtype_name(dtype), a.options);
  nlohmann::json j = r;
  j["model"] = a.model;
  j["dtype"] = dtype_name(dtype);
  j["versions"] = runtime_versions();
  j["stats"] = nlohmann::json::object();
  for (const auto& [name, samples] :
       {std::pair{"prefill_ms", &r.prefill_ms}, {"prefill_tflop_s", &r.prefill_tflop_s},
        {"decode_ms_per_token", &r.decode_ms_per_token}, {"bandwidth_gb_s", &r.bandwidth_gb_s},
        {"power_w", &r.power_w}, {"energy_j_per_token", &r.energy_j_per_token},
        {"copy_bandwidth_gb_s", &r.copy_bandwidth_gb_s}, {"matmul_tflop_s", &r.matmul_tflop_s}})
    j["stats"][name] = stats_json(*samples);
  for (const auto& [batch, samples] : r.throughput_tokens_per_s)
    j["stats"]["throughput_b" + std::to_string(batch)] = stats_json(samples);
  const std::string text = j.dump(2) + "\n";
  if (a.out.empty()) std::cout << text;
  else write_file_atomic(a.out, text);
  const SampleStats decode = sample_stats(r.decode_ms_per_token);
  log_info("{} {} on {} ({} figures): prefill {:.2f} ms ({:.0f}% of the {:.3g} TFLOP/s matmul "
           "rate), decode {:.3f} ms/token ({:.0f} tokens/s, {:.0f}% of the {:.3g} GB/s copy "
           "bandwidth), {} MB",
           a.model, dtype_name(dtype), r.device, r.device_kind, sample_stats(r.prefill_ms).median,
           100 * r.prefill_fraction_of_matmul_rate, sample_stats(r.matmul_tflop_s).median,
           decode.median, 1000.0 / decode.median, 100 * r.decode_fraction_of_copy_bandwidth,
           sample_stats(r.copy_bandwidth_gb_s).median, r.model_bytes >> 20);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Benchmark one model and dtype; writes JSON");
  cmd->add_option("--model", a->model, "Hugging Face model directory")->required();
  add_compute_dtype_option(cmd, a->dtype);
  cmd->add_option("--device", a->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--out", a->out, "JSON file (default: stdout)");
  cmd->add_option("--prefill-tokens", a->options.prefill_tokens, "Prompt length of the prefill timing")
      ->check(at_least(1))->capture_default_str();
  cmd->add_option("--decode-tokens", a->options.decode_tokens, "Timed decode steps per run")
      ->check(at_least(1))->capture_default_str();
  cmd->add_option("--throughput-prompt-tokens", a->options.throughput_prompt_tokens,
                  "Prompt length of the throughput runs")
      ->check(at_least(1))->capture_default_str();
  cmd->add_option("--batch-sizes", a->options.batch_sizes, "Batch sizes of the throughput runs")
      ->check(at_least(1))->capture_default_str();
  cmd->add_option("--warmup", a->options.warmup, "Untimed runs before the timed ones")
      ->check(at_least(0))->capture_default_str();
  cmd->add_option("--repeats", a->options.repeats, "Timed runs of each measurement")
      ->check(at_least(1))->capture_default_str();
  cmd->callback([a] {
    init_command_logging(false);
    run(*a);
  });
}

}  // namespace qsweep::cli
