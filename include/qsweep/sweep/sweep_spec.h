#pragma once
// The sweep a researcher writes in one YAML job file (docs/sweep-spec.md), parsed and validated
// completely before any model is loaded, and the work units rank 0 hands out. Plain data: every
// path is absolute and every default is filled in, so nothing downstream looks at YAML again.
#include "qsweep/bench/bench.h"
#include "qsweep/eval/coqa.h"
#include "qsweep/eval/evaluate.h"
#include "qsweep/quant/quant_config.h"
#include "qsweep/util/dtype.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qsweep {

// How one config prepares the model. A quantization parameter is added to QuantConfig and in
// sweep_configs.cpp to config_key_names(), set_config_key() and config_key_values() (and to
// quant_keys_of() for the methods that read it): parsing, grids, presets, fingerprints and
// `plan` all follow from those.
struct PrepConfig {
  std::string name;
  DType dtype = DType::bf16;  // of everything the method leaves unquantized
  std::string origin;         // "FILE:LINE" of the item it came from, for messages
  std::string model;          // another checkpoint for this config; "" = the sweep's model
  QuantConfig quant;
};

// One config from a file of its own keys (a preset file, e.g. configs/quant/nf4_dq_fp16.yaml),
// parsed and validated as the job file's presets are; its name defaults to the file's stem.
// `qsweep quantize` reads its config this way.
PrepConfig load_config_file(const std::string& path);

// Key/value pairs that define a config's model preparation, in the canonical key order (the
// order grids iterate in). `name` and `origin` are not part of it.
std::vector<std::pair<std::string, std::string>> config_key_values(const PrepConfig& config);

// Each setting is declared once, by the code that uses it (EvalOptions, GenerateOptions,
// BenchOptions), with its default there; the spec holds those structs and fills them in.
struct EvalSpec {
  bool enabled = false;
  std::string coqa;                       // CoQA file in the official dev format
  CoqaMode mode = CoqaMode::lm_eval;
  std::optional<int> limit;               // first N stories; none = all
  int shard_size = 50;                    // stories per work unit
  EvalOptions options;                    // batch size, max_new_tokens, stop, add_bos
  int bootstrap_resamples = 10000;
  std::string perplexity_text;            // "" = no perplexity
  std::vector<std::string> sanity_prompts;
};

struct BenchSpec {
  bool enabled = false;
  BenchOptions options;                   // its seed is the sweep's
};

struct SweepSpec {
  std::string path;                       // the job file
  std::string text;                       // its exact bytes, kept for provenance
  std::string spec_hash;                  // sha256 of text
  std::string name;
  std::string model;                      // HF model directory
  std::string tokenizer;                  // directory with tokenizer.json
  std::string baseline;                   // one of configs[].name
  std::string store;                      // results .h5
  uint64_t seed = 1234;
  std::string device = "auto";            // auto | cpu | cuda | cuda:N
  std::string log_dir;
  std::string cache_dir;                  // quantized checkpoints of gptq/awq configs; "": beside
                                          // the store (cache_dir_of)
  std::vector<std::string> config_dirs;   // where presets are looked up, in order
  std::vector<PrepConfig> configs;
  EvalSpec evaluation;
  BenchSpec benchmarks;
  std::vector<std::pair<std::string, std::string>> compare;
};

// Reads and validates a job file. Errors read "FILE:LINE: key 'a.b': what is wrong, what would
// be valid" and come before any work starts.
SweepSpec load_sweep_spec(const std::string& path);

// The model directory a config prepares: its own `model`, else the sweep's.
std::string model_dir_of(const SweepSpec& spec, const PrepConfig& config);

// Where the sweep caches GPTQ/AWQ checkpoints when it writes to `store` ("" for the job's own):
// the job's cache_dir, else qsweep_cache/ beside the store, so sweeps writing to one results
// directory share checkpoints (entries are keyed by content, not by sweep).
std::string cache_dir_of(const SweepSpec& spec, const std::string& store);

// The settings that decide which units exist and what their results mean, one "key=value" per
// line. A store remembers it, and resuming with a different one is refused (docs/sweep-spec.md,
// "Resume"). It reads the CoQA file, perplexity text and model config to fingerprint them.
std::string results_fingerprint(const SweepSpec& spec);
// The weight files of a model directory by name, size and SHA-256 of every byte, the hashes
// remembered in `hash_cache` (a file_hashes.json) by path, size, mtime and inode.
std::string weights_fingerprint(const std::string& model_dir, const std::string& hash_cache);
// One line per preparation key of a config, e.g. "dtype=fp16".
std::string config_fingerprint(const PrepConfig& config);

// prepare: a calibrated (gptq, awq) config's quantized checkpoint computed into the cache, once
// per sweep, before the config's other units load it.
enum class UnitKind { prepare, sanity, coqa, bench };
inline constexpr UnitKind kAllUnitKinds[] = {UnitKind::prepare, UnitKind::sanity, UnitKind::coqa,
                                             UnitKind::bench};
std::string unit_kind_name(UnitKind kind);
std::optional<UnitKind> parse_unit_kind(std::string_view name);

struct WorkUnit {
  std::string key;                        // "fp16/coqa/0003", "fp16/bench", "fp16/sanity"
  std::string config;
  UnitKind kind = UnitKind::coqa;
  int shard = -1;                         // coqa units only
  size_t begin = 0, end = 0;              // story range [begin, end) of a coqa unit
};

// Every unit of the sweep for a CoQA file holding n_stories stories, grouped by config (in spec
// order) so a rank that has prepared a model can take that config's next unit: prepare first
// for a calibrated config, then sanity (a broken config fails fast), the CoQA shards, and the
// benchmark.
std::vector<WorkUnit> expand_units(const SweepSpec& spec, size_t n_stories);

}  // namespace qsweep
