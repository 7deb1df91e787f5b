#include "qsweep/sweep/sweep_spec.h"

#include "qsweep/model/checkpoint_quantization.h"
#include "qsweep/model/model_config.h"
#include "qsweep/util/error.h"
#include "qsweep/util/text.h"
#include "sweep_configs.h"
#include "yaml_fields.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

namespace fs = std::filesystem;

namespace qsweep {

namespace {

// Relative paths in a job file mean relative to the job file, wherever qsweep is started from.
std::string get_path(const yaml::Section& s, const std::string& name, const fs::path& base,
                     const std::string& fallback) {
  if (!s.has(name)) return fallback;
  const fs::path p = yaml::expand_env(yaml::as_string(s.get(name), s.file, s.key(name)), s.file,
                                      s.get(name), s.key(name));
  return (p.is_absolute() ? p : base / p).lexically_normal().string();
}

YAML::Node where(const yaml::Section& s, const std::string& name) {
  return s.has(name) ? s.get(name) : s.node;
}

void check_dir_with(const yaml::Section& s, const std::string& name, const std::string& dir,
                    const std::string& needed, const std::string& what) {
  if (!fs::is_directory(dir))
    yaml::key_error(s.file, where(s, name), s.key(name),
                    fmt::format("directory '{}' does not exist ({} with {} is expected)", dir,
                                what, needed));
  if (!fs::is_regular_file(fs::path(dir) / needed))
    yaml::key_error(s.file, where(s, name), s.key(name),
                    fmt::format("'{}' has no {} ({} with {} is expected)", dir, needed, what,
                                needed));
}

void check_file(const yaml::Section& s, const std::string& name, const std::string& path) {
  if (!fs::is_regular_file(path))
    yaml::key_error(s.file, where(s, name), s.key(name),
                    fmt::format("file '{}' does not exist", path));
}

std::string get_device(const yaml::Section& s) {
  const std::string device = yaml::get_string(s, "device", "auto");
  const bool numbered_cuda = device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
                             device.find_first_not_of("0123456789", 5) == std::string::npos;
  return numbered_cuda ? device : yaml::get_choice(s, "device", "auto", {"auto", "cpu", "cuda"});
}

std::string get_name(const yaml::Section& s, const std::string& fallback) {
  const std::string name = yaml::get_string(s, "name", fallback);
  const bool ok = !name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                          "0123456789_-.") == std::string::npos;
  if (!ok)
    yaml::key_error(s.file, where(s, "name"), s.key("name"),
                    fmt::format("'{}' may use only letters, digits and _ - . (it names the "
                                "store file)",
                                name));
  return name;
}

std::vector<std::string> get_config_dirs(const yaml::Section& s, const fs::path& base) {
  if (!s.has("config_dirs")) {
    std::vector<std::string> dirs;
    for (const fs::path& dir : {base / "configs", base.parent_path() / "configs"})
      if (fs::is_directory(dir)) dirs.push_back(dir.lexically_normal().string());
    return dirs;
  }
  std::vector<std::string> dirs;
  const auto given = yaml::as_strings(s.get("config_dirs"), s.file, s.key("config_dirs"));
  for (size_t i = 0; i < given.size(); ++i) {
    const fs::path p = yaml::expand_env(given[i], s.file, s.get("config_dirs"), s.key("config_dirs"));
    const fs::path dir = (p.is_absolute() ? p : base / p).lexically_normal();
    if (!fs::is_directory(dir))
      yaml::key_error(s.file, s.get("config_dirs")[i], fmt::format("config_dirs[{}]", i),
                      fmt::format("directory '{}' does not exist", dir.string()));
    dirs.push_back(dir.string());
  }
  return dirs;
}

EvalSpec parse_evaluation(const yaml::Section& top, const fs::path& base) {
  EvalSpec e;
  if (!top.has("evaluation")) return e;
  const yaml::Section s = yaml::section(top.get("evaluation"), top.file, "evaluation");
  yaml::check_keys(s, {"enabled", "coqa", "mode", "limit", "shard_size", "batch_size",
                       "max_new_tokens", "stop", "add_bos", "bootstrap_resamples",
                       "perplexity_text", "sanity_prompts"});
  e.enabled = yaml::get_bool(s, "enabled", true);
  if (e.enabled) yaml::require(s, "coqa");
  e.coqa = get_path(s, "coqa", base, "");
  e.mode = parse_coqa_mode(yaml::get_choice(s, "mode", coqa_mode_name(e.mode),
                                            {coqa_mode_name(CoqaMode::lm_eval),
                                             coqa_mode_name(CoqaMode::official)}));
  if (s.has("limit") && !s.get("limit").IsNull()) e.limit = yaml::get_int(s, "limit", 0, 1);
  e.shard_size = yaml::get_int(s, "shard_size", e.shard_size, 1);
  GenerateOptions& g = e.options.generation;
  g.batch_size = yaml::get_int(s, "batch_size", g.batch_size, 1);
  g.max_new_tokens = yaml::get_int(s, "max_new_tokens", g.max_new_tokens, 1);
  g.stop = yaml::get_strings(s, "stop", g.stop);
  e.options.add_bos = yaml::get_bool(s, "add_bos", e.options.add_bos);
  e.bootstrap_resamples = yaml::get_int(s, "bootstrap_resamples", e.bootstrap_resamples, 1000);
  e.perplexity_text = get_path(s, "perplexity_text", base, "");
  e.sanity_prompts = yaml::get_strings(s, "sanity_prompts", {});
  if (e.enabled) check_file(s, "coqa", e.coqa);
  if (e.enabled && !e.perplexity_text.empty())
    check_file(s, "perplexity_text", e.perplexity_text);
  return e;
}

BenchSpec parse_benchmarks(const yaml::Section& top) {
  BenchSpec spec;
  if (!top.has("benchmarks")) return spec;
  const yaml::Section s = yaml::section(top.get("benchmarks"), top.file, "benchmarks");
  yaml::check_keys(s, {"enabled", "prefill_tokens", "decode_tokens", "throughput_prompt_tokens",
                       "batch_sizes", "warmup", "repeats"});
  spec.enabled = yaml::get_bool(s, "enabled", true);
  BenchOptions& b = spec.options;
  b.prefill_tokens = yaml::get_int(s, "prefill_tokens", b.prefill_tokens, 1);
  b.decode_tokens = yaml::get_int(s, "decode_tokens", b.decode_tokens, 1);
  b.throughput_prompt_tokens =
      yaml::get_int(s, "throughput_prompt_tokens", b.throughput_prompt_tokens, 1);
  b.batch_sizes = yaml::get_ints(s, "batch_sizes", b.batch_sizes, 1);
  b.warmup = yaml::get_int(s, "warmup", b.warmup, 0);
  b.repeats = yaml::get_int(s, "repeats", b.repeats, 1);
  if (b.batch_sizes.empty())
    yaml::key_error(s.file, s.get("batch_sizes"), s.key("batch_sizes"),
                    "must list at least one batch size, e.g. [1, 4, 8]");
  if (std::set<int>(b.batch_sizes.begin(), b.batch_sizes.end()).size() != b.batch_sizes.size())
    yaml::key_error(s.file, s.get("batch_sizes"), s.key("batch_sizes"),
                    fmt::format("lists a batch size twice: [{}]", fmt::join(b.batch_sizes, ", ")));
  return spec;
}

std::string get_config_name(const yaml::Section& s, const YAML::Node& node, const std::string& key,
                            const std::vector<PrepConfig>& configs) {
  std::vector<std::string> names;
  for (const auto& c : configs) names.push_back(c.name);
  const std::string name = yaml::as_string(node, s.file, key);
  if (std::find(names.begin(), names.end(), name) != names.end()) return name;
  const std::string near = closest_match(name, names);
  yaml::key_error(s.file, node, key,
                  fmt::format("'{}' is not a config of this sweep{}; configs: {}", name,
                              near.empty() ? "" : " (did you mean '" + near + "'?)",
                              fmt::join(names, ", ")));
}

std::vector<std::pair<std::string, std::string>> parse_compare(
    const yaml::Section& s, const std::vector<PrepConfig>& configs) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!s.has("compare")) return pairs;
  const YAML::Node list = s.get("compare");
  if (!list.IsSequence())
    yaml::key_error(s.file, list, "compare",
                    fmt::format("must be a list of [config, config] pairs, got {}",
                                yaml::describe(list)));
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string key = fmt::format("compare[{}]", i);
    if (!list[i].IsSequence() || list[i].size() != 2)
      yaml::key_error(s.file, list[i], key,
                      fmt::format("must be a pair [config, config], got {}",
                                  yaml::describe(list[i])));
    const std::string a = get_config_name(s, list[i][0], key + "[0]", configs);
    const std::string b = get_config_name(s, list[i][1], key + "[1]", configs);
    if (a == b)
      yaml::key_error(s.file, list[i], key, fmt::format("compares '{}' with itself", a));
    pairs.emplace_back(a, b);
  }
  return pairs;
}

// The model's config.json is read as the loader reads it, so a broken one fails here, before
// any work; benchmarks feed prefill_tokens + decode_tokens positions through the model, so a
// context that is too short is caught now rather than on the GPU.
// What a config's method needs of the model's shapes, and methods this build cannot run yet.
void check_config_fits_model(const PrepConfig& c, const ModelConfig& model,
                             const std::string& model_dir) {
  const QuantConfig& q = c.quant;
  if (needs_calibration(q.method) && q.calibration.text.empty())
    fail("{}: config '{}': method '{}' needs calibration data: add `calibration: {{text: FILE}}` "
         "(the project ships data/calibration/moby_dick.txt; samples, seq_len and seed are "
         "optional), or use a preset such as configs/quant/{}4_g128.yaml",
         c.origin, c.name, quant_method_name(q.method), quant_method_name(q.method));
  // A pre-quantized checkpoint runs only as stored, and from_checkpoint needs one; an
  // unsupported quantization_config fails here, naming its key.
  const CheckpointQuantization stored = read_checkpoint_quantization(model_dir);
  if (q.method == QuantMethod::from_checkpoint && stored.format == CheckpointFormat::none)
    fail("{}: config '{}': method 'from_checkpoint' needs a pre-quantized checkpoint, but {} has "
         "no quantization_config; set the config's `model` to a directory written by `qsweep "
         "quantize` or a bitsandbytes 4-bit/8-bit or GPTQ checkpoint",
         c.origin, c.name, stored.source);
  if (q.method != QuantMethod::from_checkpoint && stored.format != CheckpointFormat::none)
    fail("{}: config '{}': {} holds a pre-quantized checkpoint ({}, in its quantization_config), "
         "which cannot be quantized again by method '{}'; use method: from_checkpoint to run it "
         "as stored, or point `model` at the unquantized model",
         c.origin, c.name, stored.source, checkpoint_format_name(stored.format),
         quant_method_name(q.method));
  const bool int_group = q.method == QuantMethod::rtn || needs_calibration(q.method);
  if (!int_group || q.group_size < 0) return;
  // The input sizes of q/k/v, gate/up (hidden), o (heads x head_dim) and down (intermediate).
  for (const int in : {model.hidden_size, model.num_heads * model.head_dim, model.intermediate_size})
    if (in % q.group_size != 0)
      fail("{}: config '{}': group_size {} does not divide the input size {} of a linear layer of "
           "{} (hidden {}, heads x head_dim {}, intermediate {}); use a group size that divides "
           "them all, or -1 for one group per row",
           c.origin, c.name, q.group_size, in, model.source, model.hidden_size,
           model.num_heads * model.head_dim, model.intermediate_size);
}

void check_model_config(const yaml::Section& top, const SweepSpec& spec) {
  ModelConfig config;
  try {
    config = load_model_config(spec.model);
  } catch (const Error& e) {
    yaml::key_error(top.file, top.get("model"), "model", e.what());
  }
  const BenchOptions& b = spec.benchmarks.options;
  for (const PrepConfig& c : spec.configs) {
    const ModelConfig model = c.model.empty() ? config : load_model_config(c.model);
    check_config_fits_model(c, model, model_dir_of(spec, c));
    // Each config's own model too: a config's `model` may have a shorter context.
    if (!spec.benchmarks.enabled) continue;
    for (const auto& [key, prompt] : {std::pair{"prefill_tokens", b.prefill_tokens},
                                      {"throughput_prompt_tokens", b.throughput_prompt_tokens}}) {
      const int needed = prompt + b.decode_tokens;
      if (needed <= model.max_position_embeddings) continue;
      const yaml::Section s = yaml::section(top.get("benchmarks"), top.file, "benchmarks");
      yaml::key_error(s.file, where(s, key), std::string("benchmarks.") + key,
                      fmt::format("{} + decode_tokens = {} exceeds the model's "
                                  "max_position_embeddings {} ({})",
                                  key, needed, model.max_position_embeddings, model.source));
    }
  }
}

void parse_paths(const yaml::Section& top, const fs::path& base, SweepSpec& spec) {
  spec.model = get_path(top, "model", base, "");
  if (spec.model.empty()) yaml::require(top, "model");
  check_dir_with(top, "model", spec.model, "config.json", "a Hugging Face model directory");
  spec.tokenizer = get_path(top, "tokenizer", base, spec.model);
  if (top.has("tokenizer"))
    check_dir_with(top, "tokenizer", spec.tokenizer, "tokenizer.json", "a tokenizer directory");
  else if (!fs::is_regular_file(fs::path(spec.model) / "tokenizer.json"))
    yaml::key_error(top.file, top.get("model"), "tokenizer",
                    fmt::format("the model directory '{}' has no tokenizer.json; set 'tokenizer' "
                                "to a directory that has one",
                                spec.model));
  spec.store = get_path(top, "store", base, (base / (spec.name + ".h5")).string());
  spec.log_dir = get_path(top, "log_dir", base, (base / "logs").string());
  spec.cache_dir = get_path(top, "cache_dir", base, "");
  spec.config_dirs = get_config_dirs(top, base);
}

}  // namespace

std::string model_dir_of(const SweepSpec& spec, const PrepConfig& c) {
  return c.model.empty() ? spec.model : c.model;
}

std::string cache_dir_of(const SweepSpec& spec, const std::string& store) {
  if (!spec.cache_dir.empty()) return spec.cache_dir;
  const fs::path used = fs::absolute(store.empty() ? spec.store : store);
  return (used.parent_path() / "qsweep_cache").lexically_normal().string();
}

SweepSpec load_sweep_spec(const std::string& path) {
  SweepSpec spec;
  spec.path = fs::absolute(path).lexically_normal().string();
  spec.text = read_file(path);
  spec.spec_hash = sha256_hex(spec.text);
  const fs::path base = fs::path(spec.path).parent_path();
  const yaml::Section top = yaml::section(yaml::parse(spec.text, path), path, "");
  yaml::check_keys(top, {"name", "model", "tokenizer", "baseline", "store", "seed", "device",
                         "log_dir", "cache_dir", "config_dirs", "configs", "evaluation",
                         "benchmarks", "compare"});
  spec.name = get_name(top, fs::path(path).stem().string());
  parse_paths(top, base, spec);
  spec.seed = static_cast<uint64_t>(yaml::get_int(top, "seed", 1234, 0));
  spec.device = get_device(top);
  spec.configs = parse_configs(top.get("configs"), top.node, path, spec.config_dirs);
  spec.baseline = yaml::get_string(top, "baseline", spec.configs.front().name);
  if (top.has("baseline")) get_config_name(top, top.get("baseline"), "baseline", spec.configs);
  spec.evaluation = parse_evaluation(top, base);
  spec.benchmarks = parse_benchmarks(top);
  spec.compare = parse_compare(top, spec.configs);
  if (!spec.evaluation.enabled && !spec.benchmarks.enabled)
    yaml::key_error(path, top.node, "evaluation",
                    "nothing to run: 'evaluation' and 'benchmarks' are both missing or disabled");
  check_model_config(top, spec);
  return spec;
}

}  // namespace qsweep
