#pragma once
// The plain records a sweep produces. Evaluation fills them, MPI carries them to rank 0, the
// store writes them, analysis reads them back: fields are declared once, here.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qsweep {

// One evaluated CoQA sample (one story, scored on its last turn as lm-eval's `coqa` does; or one
// turn in the official all-turns mode).
struct SampleRecord {
  std::string id;                  // CoQA story id
  int turn = 0;                    // 1-based turn the prediction answers
  std::string source;              // CoQA domain (mctest, cnn, wikipedia, ...)
  std::string prompt_sha256;       // of the exact prompt bytes
  std::string prediction;          // post-processed as lm-eval does: what is scored
  // The decoded continuation cut before the first stop string, before post-processing: what
  // lm-eval logs as the sample's response. Absent in stores written before qsweep kept it.
  std::optional<std::string> generation;
  std::vector<std::string> golds;
  double em = 0;
  double f1 = 0;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  std::string stop_reason;         // "eos", "stop_string" or "length"
};

struct Interval {
  double lo = 0;
  double hi = 0;
};

// A mean with the uncertainty a researcher needs to compare configs.
struct MeanSummary {
  size_t n = 0;
  double mean = 0;
  double stderr_ = 0;              // sample standard deviation / sqrt(n), as lm-eval reports
  Interval t95;                    // Student-t 95% interval
  Interval bca95;                  // BCa bootstrap 95% interval
};

// Paired bootstrap of (config - baseline) over the same samples.
struct PairedComparison {
  std::string baseline;
  size_t n = 0;
  double mean_delta = 0;
  Interval bca95;
  double p_value = 1;              // two-sided, H0: mean delta = 0
};

struct ConfigMetrics {
  std::string config;
  MeanSummary em;
  MeanSummary f1;
  std::optional<PairedComparison> em_vs_baseline;
  std::optional<PairedComparison> f1_vs_baseline;
};

// Raw benchmark samples; statistics are derived from them, never stored instead of them. Each
// figure's yardstick (the device's copy bandwidth and matmul rate) is measured in the same run.
struct BenchRecord {
  std::string config;
  std::string device;              // e.g. "NVIDIA H100 80GB HBM3" or "cpu"
  std::string device_kind;         // "gpu", or "cpu": smaller yardsticks, not GPU figures
  std::string method;              // how it was measured, in words
  std::string sync;                // how the timed regions were delimited and waited for
  int64_t warmup = 0;              // untimed runs before each measurement's repeats
  int64_t repeats = 0;             // timed runs of each measurement
  int64_t prefill_tokens = 0;      // prompt of the prefill timing, batch 1
  int64_t decode_tokens = 0;       // timed steps of each decode and throughput repeat
  int64_t throughput_prompt_tokens = 0;  // prompt of the throughput runs
  int64_t model_bytes = 0;         // weights as held on the device
  int64_t peak_memory_bytes = 0;   // device peak during the benchmark (CPU: max RSS)
  // Stored bits per weight of the decoder layers' projections: codes, scales, zeros, absmax and
  // second-level state over the number of weights (16 for bf16; NaN in stores that predate it).
  double bits_per_weight = 0;
  // Bytes read by a batch-1 decode step, averaged over the timed steps: weights, norms, the
  // gathered embedding rows and the KV cache at each step's length (work_counts.h).
  double decode_bytes_per_step = 0;
  double prefill_flops = 0;        // of the prefill timing (work_counts.h)
  std::vector<double> prefill_ms;              // prefill_tokens prompt, batch 1
  std::vector<double> prefill_tflop_s;         // prefill_flops / prefill time, per repeat
  std::vector<double> decode_ms_per_token;     // batch 1, decode_tokens timed steps
  std::map<int, std::vector<double>> throughput_tokens_per_s;  // batch size -> samples
  std::vector<double> power_w;                 // NVML samples within the timed decode (GPU only)
  std::vector<double> energy_j_per_token;      // per timed decode repeat (GPU with NVML only)
  std::vector<double> bandwidth_gb_s;          // decode bytes read / decode time, per repeat
  int64_t copy_bytes = 0;                      // buffer of the copy-bandwidth measurement
  std::vector<double> copy_bandwidth_gb_s;     // (read + written) / time, per repeat
  int64_t matmul_size = 0;                     // n of the n x n x n matrix multiply
  std::vector<double> matmul_tflop_s;          // in the model's compute dtype, per repeat
  // Medians over medians: decode bandwidth / copy bandwidth, prefill rate / matmul rate.
  double decode_fraction_of_copy_bandwidth = 0;
  double prefill_fraction_of_matmul_rate = 0;
};

struct SampleStats {
  size_t n = 0;
  double mean = 0, median = 0, p90 = 0, p99 = 0, stdev = 0, min = 0, max = 0;
};

// A fixed prompt's greedy output under one config: a quick look at whether a config still
// produces language.
struct SanityOutput {
  std::string prompt;
  std::string output;
};

// A unit that threw: recorded, and the sweep goes on.
struct UnitError {
  std::string config;
  std::string unit;                // the unit key, e.g. "fp16/coqa/0003" or "fp16/bench"
  int rank = 0;
  std::string host;
  std::string message;
};

// How a rank came to hold a config's model: "loaded" (no quantization step), "quantized" (loaded
// and quantized here), or "cache" (a GPTQ/AWQ checkpoint another rank or an earlier run
// computed, loaded from the sweep's cache).
// One row per preparation: a config's rows show that a calibrated method ran once.
struct PrepareRecord {
  std::string unit;                // the unit during which the model was prepared
  int rank = 0;
  std::string host;
  std::string source;              // "loaded" | "quantized" | "cache"
  double load_seconds = 0;         // reading the checkpoint onto the device
  double quantize_seconds = 0;     // calibration and quantization (0 when loaded from the cache)
  std::string cache_entry;         // the cached checkpoint directory, "" for uncached methods
};

// What a worker sends rank 0 when a unit ends, successful or not.
struct UnitResult {
  std::string key;
  std::string config;
  int rank = 0;
  std::string host;
  double seconds = 0;
  std::vector<SampleRecord> samples;   // coqa units
  std::optional<BenchRecord> bench;    // bench units
  std::vector<SanityOutput> sanity;    // sanity units
  std::optional<double> perplexity;    // sanity units, with evaluation.perplexity_text
  std::optional<double> kl_vs_baseline;
  std::optional<PrepareRecord> prepare;  // when this unit's rank prepared the model for it
  std::optional<UnitError> error;      // set when the unit failed
};

}  // namespace qsweep
