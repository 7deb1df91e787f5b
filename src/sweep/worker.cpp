#include "qsweep/sweep/worker.h"

#include "qsweep/bench/bench.h"
#include "qsweep/eval/coqa.h"
#include "qsweep/bench/device.h"
#include "qsweep/util/error.h"
#include "qsweep/eval/evaluate.h"
#include "qsweep/model/generate.h"
#include "qsweep/util/log.h"
#include "qsweep/model/model.h"
#include "qsweep/model/perplexity.h"
#include "qsweep/model/quantized_checkpoint.h"
#include "qsweep/model/safetensors.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/quant/calibration.h"
#include "qsweep/quant/quantize_model.h"
#include "quant_cache.h"
#include "qsweep/util/text.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <optional>

namespace qsweep {

struct UnitRunner::State {
  const SweepSpec& spec;
  RankInfo rank;
  at::Device device;
  Tokenizer tokenizer;
  std::vector<CoqaSample> samples;   // every sample of the CoQA file, in story order
  std::string prepared;
  std::optional<Model> model;
  bool broken = false;
};

namespace {

// Perplexity text: up to 16 windows of 512 tokens, enough for a stable mean at modest cost.
constexpr int kPerplexityWindow = 512;
constexpr int kPerplexityWindows = 16;
// A sanity output is for a person to read: a sentence or two.
constexpr int kSanityTokens = 32;

const PrepConfig& find_config(const SweepSpec& spec, const std::string& name) {
  for (const auto& c : spec.configs)
    if (c.name == name) return c;
  fail("config '{}' is not in {}", name, spec.path);
}

double seconds_since(std::chrono::steady_clock::time_point from) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
}

int calibration_window(const SweepSpec& spec, const PrepConfig& c) {
  return calibration_seq_len(c.quant, load_model_config(model_dir_of(spec, c)).max_position_embeddings);
}

// A config's model: its checkpoint loaded in its dtype, then quantized by its method (on the
// calibration windows, for gptq and awq).
Model load_and_quantize(const UnitRunner::State& s, const PrepConfig& c, PrepareRecord& record) {
  const auto start = std::chrono::steady_clock::now();
  Model m = load_model(model_dir_of(s.spec, c), {c.dtype, s.device});
  record.load_seconds = seconds_since(start);
  const auto loaded = std::chrono::steady_clock::now();
  at::Tensor calibration;
  if (needs_calibration(c.quant.method))
    calibration = calibration_tokens(s.tokenizer, c.quant.calibration, calibration_window(s.spec, c));
  quantize_model(m, c.quant, calibration);
  record.quantize_seconds = seconds_since(loaded);
  const bool quantizes = c.quant.method != QuantMethod::none && c.quant.method != QuantMethod::from_checkpoint;
  record.source = quantizes ? "quantized" : "loaded";
  return m;
}

// A calibrated config's model from the sweep's cache, computed into it first by whichever rank
// gets there first (quant_cache.h).
Model load_calibrated(const UnitRunner::State& s, const PrepConfig& c, PrepareRecord& record) {
  const CacheEntry entry = cache_entry(s.spec, c, calibration_window(s.spec, c));
  record.cache_entry = entry.dir;
  record.source = "cache";
  if (!cache_entry_complete(entry)) {
    const CacheLock lock(entry);
    if (!cache_entry_complete(entry)) {
      const Model m = load_and_quantize(s, c, record);
      const std::string staging = cache_entry_staging(entry);
      write_quantized_checkpoint(m, model_dir_of(s.spec, c), c.dtype, staging);
      publish_cache_entry(entry, staging);
      log_info("{}: quantized checkpoint cached in {}", c.name, entry.dir);
    }
  }
  // The rank that computed it runs the checkpoint as stored too (scales rounded to float16, as
  // GPTQ checkpoints hold them), so every rank evaluates the same weights.
  const auto start = std::chrono::steady_clock::now();
  Model m = load_model(entry.dir, {c.dtype, s.device});
  record.load_seconds += seconds_since(start);
  return m;
}

// Ready to run: quantized, and its projections that share an input stacked.
Model load_config_model(const UnitRunner::State& s, const PrepConfig& c, PrepareRecord& record) {
  Model m = needs_calibration(c.quant.method) ? load_calibrated(s, c, record)
                                              : load_and_quantize(s, c, record);
  stack_projections(m);
  return m;
}

// Prepares the model for a config once per rank, and keeps it while that config's units come.
// The unit during which it happened carries the record of how.
const Model& prepare(UnitRunner::State& s, const std::string& config, UnitResult& r) {
  if (s.prepared == config && s.model) return *s.model;
  s.model.reset();  // free the previous config's weights before loading the next
  s.prepared.clear();
  const PrepConfig& c = find_config(s.spec, config);
  PrepareRecord record{r.key, r.rank, r.host, "", 0, 0, ""};
  s.model = load_config_model(s, c, record);
  s.prepared = config;
  log_info("prepared {} ({}, {}) on {}: {}, loaded in {:.1f} s, quantized in {:.1f} s, {:.3f} "
           "bits per weight", config, quant_method_name(c.quant.method), dtype_name(c.dtype),
           device_description(s.device), record.source == "cache" ? "from the cache" : "here",
           record.load_seconds, record.quantize_seconds, projection_bits_per_weight(*s.model));
  r.prepare = record;
  return *s.model;
}

// The baseline's logits on the perplexity windows, from the cache, computed into it first by
// whichever rank needs them first: one baseline load per sweep rather than one per config.
std::vector<at::Tensor> baseline_logits(const UnitRunner::State& s,
                                        const std::vector<std::vector<int32_t>>& windows) {
  const PrepConfig& b = find_config(s.spec, s.spec.baseline);
  const CacheEntry entry = baseline_logits_entry(s.spec, b, windows);
  const std::string file = entry.dir + "/logits.safetensors";
  if (!cache_entry_complete(entry)) {
    const CacheLock lock(entry);
    if (!cache_entry_complete(entry)) {
      PrepareRecord unused;
      const std::vector<at::Tensor> logits = window_logits(load_config_model(s, b, unused), windows);
      std::vector<std::pair<std::string, at::Tensor>> named;
      for (size_t i = 0; i < logits.size(); ++i) named.emplace_back(fmt::format("window.{}", i), logits[i]);
      const std::string staging = cache_entry_staging(entry);
      write_safetensors(staging + "/logits.safetensors", named);
      publish_cache_entry(entry, staging);
      log_info("baseline {}'s logits on the perplexity text cached in {}", b.name, entry.dir);
    }
  }
  const WeightFiles files = WeightFiles::open_file(file);
  std::vector<at::Tensor> logits;
  for (size_t i = 0; i < windows.size(); ++i)
    logits.push_back(files.view(fmt::format("window.{}", i)).clone());
  return logits;
}

// Perplexity of evaluation.perplexity_text and, for a config other than the baseline, the KL
// divergence from the baseline's predictions on the same tokens.
void score_perplexity_text(const UnitRunner::State& s, const Model& m, const std::string& config,
                           UnitResult& r) {
  const std::string& path = s.spec.evaluation.perplexity_text;
  if (path.empty()) return;
  const auto windows = text_windows(s.tokenizer, read_file(path), kPerplexityWindow, kPerplexityWindows);
  const TextScores scores = config == s.spec.baseline
                                ? score_text(m, nullptr, windows)
                                : score_text(m, baseline_logits(s, windows), windows);
  r.perplexity = scores.perplexity;
  r.kl_vs_baseline = scores.kl_vs_baseline;
}

std::vector<SanityOutput> run_sanity(const UnitRunner::State& s, const Model& m) {
  const EvalSpec& e = s.spec.evaluation;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : e.sanity_prompts) prompts.push_back(s.tokenizer.encode(p, true));
  GenerateOptions options;
  options.max_new_tokens = kSanityTokens;
  options.batch_size = e.options.generation.batch_size;
  const std::vector<Generation> out = generate(m, s.tokenizer, prompts, options);
  std::vector<SanityOutput> records;
  for (size_t i = 0; i < out.size(); ++i) records.push_back({e.sanity_prompts[i], out[i].text});
  return records;
}

BenchRecord run_bench(const UnitRunner::State& s, const Model& m, const std::string& config) {
  BenchOptions o = s.spec.benchmarks.options;
  o.seed = s.spec.seed;
  return run_benchmark(m, config, o);
}

void run_kind(UnitRunner::State& s, const WorkUnit& unit, UnitResult& r) {
  const Model& m = prepare(s, unit.config, r);
  switch (unit.kind) {
    case UnitKind::prepare: break;
    case UnitKind::sanity:
      r.sanity = run_sanity(s, m);
      score_perplexity_text(s, m, unit.config, r);
      break;
    case UnitKind::coqa: {
      r.samples = evaluate_samples(m, s.tokenizer, samples_of_stories(s.samples, {unit.begin, unit.end}),
                                   s.spec.evaluation.options);
      break;
    }
    case UnitKind::bench: r.bench = run_bench(s, m, unit.config); break;
  }
}

// Whatever failed, a unit becomes an error row and the sweep goes on. Whether this rank can
// take more units is the device's answer, not the message's: a CUDA fault leaves the context
// unusable, which the health check reports as a DeviceError.
void fail_unit(UnitRunner::State& s, const WorkUnit& unit, UnitResult& r, const std::string& message,
               bool device_failed) {
  r.error = UnitError{unit.config, unit.key, r.rank, r.host, message};
  r.samples.clear();
  r.sanity.clear();
  r.bench.reset();
  try {
    if (!device_failed) check_device_usable(s.device);
  } catch (const DeviceError& e) {
    log_error("{}", e.what());
    device_failed = true;
  }
  if (!device_failed) return;
  s.broken = true;
  s.model.reset();
}

}  // namespace

UnitRunner::UnitRunner(const SweepSpec& spec, const RankInfo& rank)
    : state_(new State{spec, rank, choose_device(spec.device, rank.local_rank),
                       Tokenizer::from_model_dir(spec.tokenizer), {}, {}, {}, false}) {
  // Benchmarks assume a GPU of their own; ranks sharing one perturb each other's timings.
  if (state_->device.is_cuda() && rank.local_size > visible_gpus())
    log_warning("{} ranks on {} share {} GPU(s): benchmark figures will include the other "
                "ranks' load (give each rank its own GPU, e.g. sbatch --gpus-per-task=1)",
                rank.local_size, rank.host, visible_gpus());
  if (spec.evaluation.enabled) {
    const CoqaData data = load_coqa(spec.evaluation.coqa);
    state_->samples = build_samples(data.stories, spec.evaluation.mode);
  }
}

UnitRunner::~UnitRunner() = default;

UnitResult UnitRunner::run(const WorkUnit& unit) {
  UnitResult r;
  r.key = unit.key;
  r.config = unit.config;
  r.rank = state_->rank.rank;
  r.host = state_->rank.host;
  const auto start = std::chrono::steady_clock::now();
  try {
    run_kind(*state_, unit, r);
  } catch (const DeviceError& e) {
    fail_unit(*state_, unit, r, e.what(), true);
  } catch (const c10::Error& e) {
    fail_unit(*state_, unit, r, e.what_without_backtrace(), false);  // libtorch's trace helps nobody
  } catch (const std::exception& e) {
    fail_unit(*state_, unit, r, e.what(), false);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

const std::string& UnitRunner::prepared_config() const { return state_->prepared; }
bool UnitRunner::broken() const { return state_->broken; }

std::string UnitRunner::device() const {
  return fmt::format("{} {} ({})", state_->rank.host, state_->device.str(),
                     device_description(state_->device));
}

}  // namespace qsweep
