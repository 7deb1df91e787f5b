#include "sweep_configs.h"

#include "qsweep/util/error.h"
#include "qsweep/util/text.h"
#include "yaml_fields.h"
#include "qsweep/quant/quant_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>

namespace fs = std::filesystem;

namespace qsweep {

namespace {

// --- The preparation keys: the one place a new quantization method or parameter is added. ---

// Canonical order; a grid varies the first key slowest, so configs that share the costlier
// preparation steps (listed first) stay adjacent.
const std::vector<std::string>& config_key_names() {
  static const std::vector<std::string> names = {
      "model",     "method",       "dtype",     "compute_dtype", "bits",
      "group_size", "sym",         "blocksize", "double_quant",  "threshold",
      "quantize_lm_head", "damp_percent", "desc_act", "static_groups", "clip", "calibration"};
  return names;
}

// Keys a config must set somewhere (inline, in its preset, in its grid).
const std::vector<std::string>& required_config_keys() {
  static const std::vector<std::string> names = {"dtype"};
  return names;
}

template <typename T, size_t N>
std::vector<std::string> names_of(const T (&values)[N], const char* (*name)(T)) {
  std::vector<std::string> out;
  for (T v : values) out.push_back(name(v));
  return out;
}

DType dtype_from_yaml(const YAML::Node& node, const std::string& file, const std::string& key) {
  return *parse_dtype(yaml::as_choice(node, file, key, names_of(kAllDTypes, dtype_name)));
}

template <size_t N>
int int_from_list(const YAML::Node& node, const std::string& file, const std::string& key,
                  const int (&allowed)[N], const char* why) {
  const long long value = yaml::as_int(node, file, key);
  for (int a : allowed)
    if (value == a) return a;
  yaml::key_error(file, node, key,
                  fmt::format("must be one of {}, got {} ({})", fmt::join(allowed, ", "), value, why));
}

// A model directory relative to the file that names it, checked like the sweep's own `model`.
std::string parse_model_dir(const YAML::Node& node, const std::string& file, const std::string& key) {
  namespace fs = std::filesystem;
  const fs::path given = yaml::expand_env(yaml::as_string(node, file, key), file, node, key);
  const fs::path dir = (given.is_absolute() ? given : fs::path(file).parent_path() / given).lexically_normal();
  if (!fs::is_regular_file(dir / "config.json"))
    yaml::key_error(file, node, key,
                    fmt::format("'{}' is not a Hugging Face model directory (no config.json)",
                                dir.string()));
  return dir.string();
}

// `calibration: {text: FILE, samples: N, seq_len: L, seed: S}`, the text relative to the file
// that names it and hashed now, so the fingerprint says which text it was.
CalibrationSpec parse_calibration(const YAML::Node& node, const std::string& file,
                                  const std::string& key) {
  const yaml::Section s = yaml::section(node, file, key);
  yaml::check_keys(s, {"text", "samples", "seq_len", "seed"});
  CalibrationSpec c;
  const YAML::Node text = yaml::require(s, "text");
  const fs::path given = yaml::expand_env(yaml::as_string(text, file, s.key("text")), file, text,
                                          s.key("text"));
  c.text = (given.is_absolute() ? given : fs::path(file).parent_path() / given).lexically_normal();
  if (!fs::is_regular_file(c.text))
    yaml::key_error(file, text, s.key("text"),
                    fmt::format("calibration text '{}' does not exist; the project ships "
                                "data/calibration/moby_dick.txt", c.text));
  c.text_sha256 = sha256_file(c.text);
  c.samples = yaml::get_int(s, "samples", c.samples, 1);
  c.seq_len = yaml::get_int(s, "seq_len", c.seq_len, 16);
  c.seed = static_cast<uint64_t>(yaml::get_int(s, "seed", 0, 0));
  return c;
}

double damp_from_yaml(const YAML::Node& node, const std::string& file, const std::string& key) {
  const double damp = yaml::as_double(node, file, key);
  if (!(damp >= 0 && damp < 1))
    yaml::key_error(file, node, key,
                    fmt::format("must be in [0, 1) (a fraction of the mean Hessian diagonal; "
                                "GPTQ uses 0.01), got {}", damp));
  return damp;
}

void set_config_key(PrepConfig& config, const std::string& name, const YAML::Node& value,
                    const std::string& file, const std::string& key) {
  QuantConfig& q = config.quant;
  if (name == "model") config.model = parse_model_dir(value, file, key);
  if (name == "dtype") config.dtype = dtype_from_yaml(value, file, key);
  if (name == "method")
    q.method = *parse_quant_method(
        yaml::as_choice(value, file, key, names_of(kAllQuantMethods, quant_method_name)));
  if (name == "compute_dtype") q.compute_dtype = dtype_from_yaml(value, file, key);
  if (name == "bits") q.bits = int_from_list(value, file, key, kIntBits, "bits per weight");
  if (name == "group_size")
    q.group_size = int_from_list(value, file, key, kIntGroupSizes,
                                 "input channels per group; -1 for one group per row");
  if (name == "sym") q.sym = yaml::as_bool(value, file, key);
  if (name == "blocksize")
    q.blocksize = int_from_list(value, file, key, kBnb4Blocksizes,
                                "the block sizes bitsandbytes accepts for 4-bit weights");
  if (name == "double_quant") q.double_quant = yaml::as_bool(value, file, key);
  if (name == "threshold") {
    q.threshold = yaml::as_double(value, file, key);
    if (!(q.threshold >= 0))
      yaml::key_error(file, value, key,
                      fmt::format("must be at least 0 (0 turns the outlier path off), got {}",
                                  q.threshold));
  }
  if (name == "quantize_lm_head") q.quantize_lm_head = yaml::as_bool(value, file, key);
  if (name == "damp_percent") q.damp_percent = damp_from_yaml(value, file, key);
  if (name == "desc_act") q.desc_act = yaml::as_bool(value, file, key);
  if (name == "static_groups") q.static_groups = yaml::as_bool(value, file, key);
  if (name == "clip") q.clip = yaml::as_bool(value, file, key);
  if (name == "calibration") q.calibration = parse_calibration(value, file, key);
}

}  // namespace

namespace {

// The window length is left as set ("default" for the method's): it is capped only once the
// model's context is known, and the model is part of the sweep's own fingerprint.
std::string calibration_value(const CalibrationSpec& c) {
  if (c.text.empty()) return "none";
  return fmt::format("sha256:{} samples={} seq_len={} seed={}", c.text_sha256, c.samples,
                     c.seq_len > 0 ? std::to_string(c.seq_len) : "default", c.seed);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> config_key_values(const PrepConfig& config) {
  const QuantConfig& q = config.quant;
  std::vector<std::pair<std::string, std::string>> values;
  if (!config.model.empty()) values.emplace_back("model", config.model);
  // Unquantized configs keep the keys they always had, so their fingerprints stay the same.
  if (q.method != QuantMethod::none) values.emplace_back("method", quant_method_name(q.method));
  values.emplace_back("dtype", dtype_name(config.dtype));
  const std::vector<std::string>& takes = quant_keys_of(q.method);
  for (const std::string& key : config_key_names()) {
    if (std::find(takes.begin(), takes.end(), key) == takes.end()) continue;
    std::string value;
    if (key == "compute_dtype") value = dtype_name(q.compute_dtype.value_or(config.dtype));
    if (key == "bits") value = std::to_string(q.bits);
    if (key == "group_size") value = std::to_string(q.group_size);
    if (key == "sym") value = q.sym ? "true" : "false";
    if (key == "blocksize") value = std::to_string(q.blocksize);
    if (key == "double_quant") value = q.double_quant ? "true" : "false";
    if (key == "threshold") value = fmt::format("{}", q.threshold);
    if (key == "quantize_lm_head") value = q.quantize_lm_head ? "true" : "false";
    if (key == "damp_percent") value = fmt::format("{}", q.damp_percent);
    if (key == "desc_act") value = q.desc_act ? "true" : "false";
    if (key == "static_groups") value = q.static_groups ? "true" : "false";
    if (key == "clip") value = q.clip ? "true" : "false";
    if (key == "calibration") value = calibration_value(q.calibration);
    values.emplace_back(key, value);
  }
  return values;
}

// --- Inline configs, presets and grids, all built from the keys above. ---

namespace {

std::vector<std::string> with_config_keys(std::vector<std::string> keys) {
  keys.insert(keys.end(), config_key_names().begin(), config_key_names().end());
  return keys;
}

std::string origin_of(const yaml::Section& s) {
  return fmt::format("{}:{}", s.file, yaml::line_of(s.node));
}

// Where each key of a config was set (the last setting wins), for messages about it.
struct KeyOrigin {
  std::string file;
  YAML::Node node;
  std::string key;
};
using KeyOrigins = std::map<std::string, KeyOrigin>;

// Applies the preparation keys present in `s` and notes where each was set.
void apply_config_keys(PrepConfig& config, const yaml::Section& s, KeyOrigins& set) {
  for (const auto& name : config_key_names()) {
    if (!s.has(name)) continue;
    set_config_key(config, name, s.get(name), s.file, s.key(name));
    set[name] = {s.file, s.get(name), s.key(name)};
  }
}

// A parameter that the config's method does not read is a mistake (a typo'd method, a
// parameter meant for another config), so it is refused rather than ignored.
void check_method_keys(const PrepConfig& config, const KeyOrigins& set) {
  const QuantMethod method = config.quant.method;
  const std::vector<std::string>& takes = quant_keys_of(method);
  for (const auto& [name, origin] : set) {
    if (name == "model" || name == "method" || name == "dtype") continue;
    if (std::find(takes.begin(), takes.end(), name) != takes.end()) continue;
    std::vector<std::string> users;
    for (QuantMethod m : kAllQuantMethods) {
      const auto& keys = quant_keys_of(m);
      if (std::find(keys.begin(), keys.end(), name) != keys.end()) users.push_back(quant_method_name(m));
    }
    yaml::key_error(origin.file, origin.node, origin.key,
                    fmt::format("does not apply to method '{}' ({} takes {}); it is a parameter of {}",
                                quant_method_name(method), quant_method_name(method),
                                takes.empty() ? "no parameters" : fmt::format("{}", fmt::join(takes, ", ")),
                                fmt::join(users, ", ")));
  }
}

void require_config_keys(const KeyOrigins& set, const yaml::Section& s,
                         const std::string& where) {
  for (const auto& name : required_config_keys())
    if (!set.count(name))
      yaml::key_error(s.file, s.node, s.key(name), "is required " + where + " but missing");
}

// Config names become HDF5 group names, unit keys and file names.
void check_config_name(const std::string& name, const yaml::Section& s) {
  const bool ok = !name.empty() && name != "." && name != ".." &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                           c == '.' || c == '+';
                  });
  if (!ok)
    yaml::key_error(s.file, s.has("name") ? s.get("name") : s.node, s.key("name"),
                    fmt::format("config name '{}' may use only letters, digits and _ - . +",
                                name));
}

PrepConfig parse_inline(const yaml::Section& s) {
  yaml::check_keys(s, with_config_keys({"name"}));
  PrepConfig config;
  config.name = yaml::as_string(yaml::require(s, "name"), s.file, s.key("name"));
  KeyOrigins set;
  apply_config_keys(config, s, set);
  require_config_keys(set, s, "in an inline config");
  check_method_keys(config, set);
  config.origin = origin_of(s);
  return config;
}

// "KIND/NAME" for every DIR/KIND/NAME.yaml.
std::vector<std::string> presets_in(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& kind : fs::directory_iterator(dir, ec)) {
    if (!kind.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(kind.path(), ec))
      if (file.path().extension() == ".yaml")
        names.push_back(kind.path().filename().string() + "/" + file.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// `preset: fp16` finds DIR/*/fp16.yaml, `preset: precision/fp16` finds DIR/precision/fp16.yaml;
// the first config dir with a match wins.
// The known preset closest to a mistyped one, compared by NAME alone when KIND was left out.
std::string closest_preset(const std::string& preset, const std::vector<std::string>& known) {
  const bool by_name = preset.find('/') == std::string::npos;
  std::vector<std::string> candidates;
  for (const auto& name : known)
    candidates.push_back(by_name ? fs::path(name).filename().string() : name);
  const std::string near = closest_match(preset, candidates);
  for (size_t i = 0; i < known.size(); ++i)
    if (!near.empty() && candidates[i] == near) return known[i];
  return "";
}

std::string find_preset(const std::string& preset, const std::vector<std::string>& dirs,
                        const yaml::Section& s) {
  std::vector<std::string> known;
  for (const auto& dir : dirs) {
    std::vector<std::string> hits;
    for (const auto& name : presets_in(dir)) {
      known.push_back(name);
      if (name == preset || fs::path(name).filename().string() == preset) hits.push_back(name);
    }
    if (hits.size() == 1) return (fs::path(dir) / (hits[0] + ".yaml")).string();
    if (hits.size() > 1)
      yaml::key_error(s.file, s.get("preset"), s.key("preset"),
                      fmt::format("'{}' is ambiguous in {}: write one of {}", preset, dir,
                                  fmt::join(hits, ", ")));
  }
  const std::string near = closest_preset(preset, known);
  yaml::key_error(s.file, s.get("preset"), s.key("preset"),
                  fmt::format("no preset '{}' in the config dirs [{}]{}; available: {}", preset,
                              fmt::join(dirs, ", "),
                              near.empty() ? "" : "; did you mean '" + near + "'?",
                              known.empty() ? "none" : fmt::format("{}", fmt::join(known, ", "))));
}

// A preset file holds one config's keys; the job's item may override any of them and the name.
PrepConfig parse_preset(const yaml::Section& s, const std::vector<std::string>& dirs) {
  yaml::check_keys(s, with_config_keys({"preset", "name"}));
  const std::string preset = yaml::as_string(yaml::require(s, "preset"), s.file, s.key("preset"));
  const std::string path = find_preset(preset, dirs, s);
  const yaml::Section p = yaml::section(yaml::parse(read_file(path), path), path, "");
  yaml::check_keys(p, with_config_keys({"name"}));
  PrepConfig config;
  config.name = yaml::get_string(p, "name", fs::path(preset).filename().string());
  config.name = yaml::get_string(s, "name", config.name);
  KeyOrigins set;
  apply_config_keys(config, p, set);
  apply_config_keys(config, s, set);
  require_config_keys(set, s, "in preset " + path + " or its override");
  check_method_keys(config, set);
  config.origin = fmt::format("{} (preset {})", origin_of(s), path);
  return config;
}

struct GridAxis {
  std::string key;
  YAML::Node values;  // a non-empty list
};

std::vector<GridAxis> grid_axes(const yaml::Section& s) {
  const yaml::Section g = yaml::section(yaml::require(s, "grid"), s.file, s.key("grid"));
  yaml::check_keys(g, config_key_names());
  std::vector<GridAxis> axes;
  for (const auto& name : config_key_names()) {
    if (!g.has(name)) continue;
    const YAML::Node values = g.get(name);
    if (!values.IsSequence() || values.size() == 0)
      yaml::key_error(g.file, values, g.key(name),
                      fmt::format("must be a non-empty list of values, got {}",
                                  yaml::describe(values)));
    if (s.has(name))
      yaml::key_error(s.file, s.get(name), s.key(name),
                      "is also a grid key; set it in the grid or here, not both");
    axes.push_back({name, values});
  }
  if (axes.empty())
    yaml::key_error(g.file, g.node, s.key("grid"),
                    "must name at least one key to vary, e.g. {dtype: [fp16, bf16]}");
  return axes;
}

// Every grid key that takes more than one value must appear as {key} in the name template,
// otherwise the expanded configs would share a name; {other} placeholders are errors.
void check_name_template(const std::string& pattern, const std::vector<GridAxis>& axes,
                         const yaml::Section& s) {
  const YAML::Node at = s.has("name") ? s.get("name") : s.node;
  for (size_t open = pattern.find('{'); open != std::string::npos;
       open = pattern.find('{', open + 1)) {
    const size_t close = pattern.find('}', open);
    const std::string key = pattern.substr(open + 1, close - open - 1);
    const bool known = close != std::string::npos &&
                       std::any_of(axes.begin(), axes.end(),
                                   [&](const GridAxis& a) { return a.key == key; });
    if (!known)
      yaml::key_error(s.file, at, s.key("name"),
                      fmt::format("template '{}' uses '{{{}}}', which is not a grid key", pattern,
                                  key));
  }
  for (const auto& axis : axes)
    if (axis.values.size() > 1 && pattern.find("{" + axis.key + "}") == std::string::npos)
      yaml::key_error(s.file, at, s.key("name"),
                      fmt::format("template '{}' lacks '{{{}}}', so the grid's configs would "
                                  "share one name",
                                  pattern, axis.key));
}

std::string default_name_template(const std::vector<GridAxis>& axes) {
  std::vector<std::string> parts;
  for (const auto& axis : axes) parts.push_back("{" + axis.key + "}");
  return fmt::format("{}", fmt::join(parts, "-"));
}

PrepConfig grid_point(const PrepConfig& base, KeyOrigins set, const std::string& pattern,
                      const std::vector<GridAxis>& axes, const std::vector<size_t>& index,
                      const yaml::Section& s) {
  PrepConfig config = base;
  config.name = pattern;
  for (size_t a = 0; a < axes.size(); ++a) {
    const YAML::Node value = axes[a].values[index[a]];
    const std::string key = fmt::format("{}grid.{}[{}]", s.prefix, axes[a].key, index[a]);
    set_config_key(config, axes[a].key, value, s.file, key);
    set[axes[a].key] = {s.file, value, key};
    const std::string text = yaml::as_string(value, s.file, key);
    const std::string placeholder = "{" + axes[a].key + "}";
    for (size_t at = config.name.find(placeholder); at != std::string::npos;
         at = config.name.find(placeholder, at + text.size()))
      config.name.replace(at, placeholder.size(), text);
  }
  check_method_keys(config, set);
  return config;
}

// The cartesian product, last axis fastest (llama-bench's order): configs that share the
// earlier, costlier preparation keys are adjacent.
std::vector<PrepConfig> parse_grid(const yaml::Section& s) {
  yaml::check_keys(s, with_config_keys({"grid", "name"}));
  const std::vector<GridAxis> axes = grid_axes(s);
  const std::string pattern = yaml::get_string(s, "name", default_name_template(axes));
  check_name_template(pattern, axes, s);
  PrepConfig base;
  KeyOrigins set;
  apply_config_keys(base, s, set);
  KeyOrigins with_axes = set;
  for (const auto& axis : axes) with_axes[axis.key] = {s.file, axis.values, s.key("grid." + axis.key)};
  require_config_keys(with_axes, s, "in the grid or beside it");
  base.origin = origin_of(s);

  std::vector<PrepConfig> out;
  std::vector<size_t> index(axes.size(), 0);
  while (true) {
    out.push_back(grid_point(base, set, pattern, axes, index, s));
    size_t a = axes.size();
    while (a > 0 && ++index[a - 1] == axes[a - 1].values.size()) index[--a] = 0;
    if (a == 0) break;
  }
  return out;
}

std::vector<PrepConfig> parse_item(const yaml::Section& s, const std::vector<std::string>& dirs) {
  if (s.has("grid")) return parse_grid(s);
  if (s.has("preset")) return {parse_preset(s, dirs)};
  return {parse_inline(s)};
}

}  // namespace

PrepConfig load_config_file(const std::string& path) {
  const yaml::Section s = yaml::section(yaml::parse(read_file(path), path), path, "");
  yaml::check_keys(s, with_config_keys({"name"}));
  PrepConfig config;
  config.name = yaml::get_string(s, "name", fs::path(path).stem().string());
  KeyOrigins set;
  apply_config_keys(config, s, set);
  require_config_keys(set, s, "in the config file");
  check_method_keys(config, set);
  check_config_name(config.name, s);
  config.origin = origin_of(s);
  return config;
}

std::vector<PrepConfig> parse_configs(const YAML::Node& list, const YAML::Node& parent,
                                      const std::string& file,
                                      const std::vector<std::string>& config_dirs) {
  if (!list.IsDefined() || list.IsNull())
    yaml::key_error(file, parent, "configs", "is required but missing");
  if (!list.IsSequence() || list.size() == 0)
    yaml::key_error(file, list, "configs",
                    "must be a non-empty list of configs: inline {name, dtype}, "
                    "{preset: NAME} or {grid: {...}, name: TEMPLATE}");
  std::vector<PrepConfig> configs;
  std::map<std::string, std::string> first_seen;  // name -> origin
  for (size_t i = 0; i < list.size(); ++i) {
    const yaml::Section s = yaml::section(list[i], file, fmt::format("configs[{}]", i));
    for (PrepConfig& config : parse_item(s, config_dirs)) {
      check_config_name(config.name, s);
      const auto [it, fresh] = first_seen.emplace(config.name, config.origin);
      if (!fresh)
        yaml::key_error(file, s.has("name") ? s.get("name") : s.node, s.key("name"),
                        fmt::format("duplicate config name '{}' (first defined at {})",
                                    config.name, it->second));
      configs.push_back(std::move(config));
    }
  }
  return configs;
}

}  // namespace qsweep
