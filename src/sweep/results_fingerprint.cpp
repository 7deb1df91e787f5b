// What makes two runs' results comparable, written out as text so that a refused resume can say
// which setting changed. Settings that only affect where things go (store, log_dir, device,
// config_dirs) or what is derived from stored results (baseline, compare, bootstrap_resamples:
// metrics_refresh.h recomputes those on resume) are left out: changing them between runs is safe.
#include "file_hashes.h"
#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/util/text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

namespace fs = std::filesystem;

namespace qsweep {
namespace {

std::string flag(bool value) { return value ? "true" : "false"; }

void add_evaluation(std::vector<std::string>& lines, const EvalSpec& e) {
  lines.push_back("evaluation.enabled=" + flag(e.enabled));
  if (!e.enabled) return;
  lines.push_back("evaluation.coqa_sha256=" + sha256_file(e.coqa));
  lines.push_back(fmt::format("evaluation.mode={}", coqa_mode_name(e.mode)));
  lines.push_back("evaluation.limit=" + (e.limit ? std::to_string(*e.limit) : "none"));
  lines.push_back(fmt::format("evaluation.shard_size={}", e.shard_size));
  // Batching changes padding and so, at low precision, the numbers: part of the result.
  const GenerateOptions& g = e.options.generation;
  lines.push_back(fmt::format("evaluation.batch_size={}", g.batch_size));
  lines.push_back(fmt::format("evaluation.max_new_tokens={}", g.max_new_tokens));
  lines.push_back("evaluation.stop=" + nlohmann::json(g.stop).dump());
  lines.push_back("evaluation.add_bos=" + flag(e.options.add_bos));
  lines.push_back("evaluation.perplexity_text_sha256=" +
                  (e.perplexity_text.empty() ? "none" : sha256_file(e.perplexity_text)));
  lines.push_back("evaluation.sanity_prompts=" + nlohmann::json(e.sanity_prompts).dump());
}

void add_benchmarks(std::vector<std::string>& lines, const BenchSpec& spec) {
  lines.push_back("benchmarks.enabled=" + flag(spec.enabled));
  if (!spec.enabled) return;
  const BenchOptions& b = spec.options;
  lines.push_back(fmt::format("benchmarks.prefill_tokens={}", b.prefill_tokens));
  lines.push_back(fmt::format("benchmarks.decode_tokens={}", b.decode_tokens));
  lines.push_back(fmt::format("benchmarks.throughput_prompt_tokens={}", b.throughput_prompt_tokens));
  lines.push_back(fmt::format("benchmarks.batch_sizes={}", fmt::join(b.batch_sizes, ",")));
  lines.push_back(fmt::format("benchmarks.warmup={}", b.warmup));
  lines.push_back(fmt::format("benchmarks.repeats={}", b.repeats));
}

}  // namespace

// Every byte of every weight file (and of a sharded checkpoint's index): two checkpoints that
// differ anywhere, even deep inside the last tensor, are different models. The hashes are cached
// (file_hashes.h), so only a new or changed file is read through.
std::string weights_fingerprint(const std::string& model_dir, const std::string& hash_cache) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(model_dir))
    if (entry.path().filename().string().find(".safetensors") != std::string::npos)
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::vector<std::string> parts;
  for (const auto& file : files)
    parts.push_back(fmt::format("{}:{}:{}", file.filename().string(), fs::file_size(file),
                                cached_sha256(file.string(), hash_cache)));
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ","));
}

std::string results_fingerprint(const SweepSpec& spec) {
  const std::string hash_cache = hash_cache_of(cache_dir_of(spec, ""));
  // 2: whole-file weight hashes (1 hashed the first MiB), configs' own models included.
  std::vector<std::string> lines = {
      "fingerprint_format=2",
      "model.config_sha256=" + sha256_file((fs::path(spec.model) / "config.json").string()),
      "model.weights=" + weights_fingerprint(spec.model, hash_cache),
      "tokenizer.sha256=" + sha256_file((fs::path(spec.tokenizer) / "tokenizer.json").string()),
      fmt::format("seed={}", spec.seed)};
  // A config's own checkpoint is named by path in its fingerprint; its contents are here.
  std::set<std::string> own_models;
  for (const PrepConfig& c : spec.configs)
    if (!c.model.empty()) own_models.insert(c.model);
  for (const std::string& dir : own_models) {
    lines.push_back(fmt::format("model[{}].config_sha256={}", dir,
                                sha256_file((fs::path(dir) / "config.json").string())));
    lines.push_back(fmt::format("model[{}].weights={}", dir, weights_fingerprint(dir, hash_cache)));
  }
  add_evaluation(lines, spec.evaluation);
  add_benchmarks(lines, spec.benchmarks);
  return fmt::format("{}\n", fmt::join(lines, "\n"));
}

std::string config_fingerprint(const PrepConfig& config) {
  std::string out;
  for (const auto& [key, value] : config_key_values(config)) out += key + "=" + value + "\n";
  return out;
}

}  // namespace qsweep
