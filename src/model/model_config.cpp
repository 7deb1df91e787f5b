#include "qsweep/model/model_config.h"

#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

namespace qsweep {
namespace {

using nlohmann::json;

json parse_json_file(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
}

int required_int(const json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key)) fail("{}: missing key '{}' (a Llama config.json has it)", path, key);
  if (!j[key].is_number_integer() || j[key].get<long>() <= 0)
    fail("{}: key '{}' must be a positive integer, got {}", path, key, j[key].dump());
  return j[key].get<int>();
}

int optional_int(const json& j, const std::string& key, int fallback, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return required_int(j, key, path);
}

double optional_positive(const json& j, const std::string& key, double fallback,
                         const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number() || j[key].get<double>() <= 0)
    fail("{}: key '{}' must be a positive number, got {}", path, key, j[key].dump());
  return j[key].get<double>();
}

// eos_token_id is one id or a list of them, in config.json and generation_config.json alike.
void add_eos_ids(const json& j, const std::string& path, std::vector<int>& ids) {
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return;
  const json& value = j["eos_token_id"];
  const json list = value.is_array() ? value : json::array({value});
  for (const auto& v : list) {
    if (!v.is_number_integer() || v.get<long>() < 0)
      fail("{}: key 'eos_token_id' must be a token id or a list of them, got {}", path,
           value.dump());
    ids.push_back(v.get<int>());
  }
}

// What the engine assumes of a Llama's shapes, checked where the numbers are read.
void check_shapes(const json& j, const ModelConfig& c) {
  if (!j.contains("head_dim") && c.hidden_size % c.num_heads != 0)
    fail("{}: hidden_size ({}) is not a multiple of num_attention_heads ({}) and no head_dim is "
         "given", c.source, c.hidden_size, c.num_heads);
  if (c.head_dim % 2 != 0)
    fail("{}: head_dim {} is odd; rotary embeddings rotate pairs of dimensions", c.source,
         c.head_dim);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", c.source,
         c.num_heads, c.num_kv_heads);
  for (int id : c.eos_token_ids)
    if (id >= c.vocab_size)
      fail("{}: eos_token_id {} is outside the vocabulary (vocab_size {})", c.source, id,
           c.vocab_size);
  if (c.bos_token_id >= c.vocab_size)
    fail("{}: bos_token_id {} is outside the vocabulary (vocab_size {})", c.source,
         c.bos_token_id, c.vocab_size);
}

// A config.json of another architecture can carry model_type "llama"-compatible numbers; its
// `architectures` and `hidden_act` say what its forward pass is.
void check_architecture(const json& j, const std::string& path) {
  if (j.contains("architectures") && !j["architectures"].is_null()) {
    const json& a = j["architectures"];
    const bool llama = a.is_array() && std::any_of(a.begin(), a.end(), [](const json& v) {
      return v.is_string() && v.get<std::string>() == "LlamaForCausalLM";
    });
    if (!llama)
      fail("{}: architectures {} is not supported (qsweep runs LlamaForCausalLM)", path, a.dump());
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    fail("{}: hidden_act {} is not supported (Llama uses \"silu\")", path,
         j["hidden_act"].dump());
}

void read_rope_scaling(const json& j, ModelConfig& c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  const json& r = j["rope_scaling"];
  const std::string type = r.value("rope_type", r.value("type", std::string("default")));
  if (type == "default") return;
  c.rope_factor = r.value("factor", 1.0);
  if (type == "linear") {
    c.rope_scaling = RopeScaling::linear;
  } else if (type == "llama3") {
    c.rope_scaling = RopeScaling::llama3;
    c.rope_low_freq_factor = r.value("low_freq_factor", 1.0);
    c.rope_high_freq_factor = r.value("high_freq_factor", 4.0);
    c.rope_original_max_position = r.value("original_max_position_embeddings", 8192);
  } else {
    fail("{}: rope_scaling type '{}' is not supported (supported: default, linear, llama3)",
         c.source, type);
  }
}

}  // namespace

ModelConfig load_model_config(const std::string& model_dir) {
  ModelConfig c;
  c.source = model_dir + "/config.json";
  if (!std::filesystem::exists(c.source))
    fail("{}: not found; --model must name a Hugging Face model directory with config.json",
         c.source);
  const json j = parse_json_file(c.source);
  if (!j.is_object()) fail("{}: is {}, not a JSON object of settings", c.source, j.type_name());
  if (j.contains("model_type") && !j["model_type"].is_string())
    fail("{}: key 'model_type' must be a string, got {}", c.source, j["model_type"].dump());
  c.model_type = j.value("model_type", std::string("llama"));
  if (c.model_type != "llama")
    fail("{}: model_type '{}' is not supported (qsweep runs Llama-family models: 'llama')",
         c.source, c.model_type);
  check_architecture(j, c.source);
  c.vocab_size = required_int(j, "vocab_size", c.source);
  c.hidden_size = required_int(j, "hidden_size", c.source);
  c.intermediate_size = required_int(j, "intermediate_size", c.source);
  c.num_layers = required_int(j, "num_hidden_layers", c.source);
  c.num_heads = required_int(j, "num_attention_heads", c.source);
  c.num_kv_heads = optional_int(j, "num_key_value_heads", c.num_heads, c.source);
  c.head_dim = optional_int(j, "head_dim", c.hidden_size / c.num_heads, c.source);
  c.max_position_embeddings = optional_int(j, "max_position_embeddings", 2048, c.source);
  c.rope_theta = optional_positive(j, "rope_theta", 10000.0, c.source);
  c.rms_norm_eps = optional_positive(j, "rms_norm_eps", 1e-6, c.source);
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_boolean())
    fail("{}: key 'tie_word_embeddings' must be true or false, got {}", c.source,
         j["tie_word_embeddings"].dump());
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string())
    c.torch_dtype = j["torch_dtype"].get<std::string>();
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
    c.bos_token_id = j["bos_token_id"].get<int>();
  read_rope_scaling(j, c);
  add_eos_ids(j, c.source, c.eos_token_ids);
  const std::string generation = model_dir + "/generation_config.json";
  if (std::filesystem::exists(generation)) {
    const json g = parse_json_file(generation);
    if (!g.is_object()) fail("{}: is {}, not a JSON object of settings", generation, g.type_name());
    add_eos_ids(g, generation, c.eos_token_ids);
  }
  check_shapes(j, c);
  std::sort(c.eos_token_ids.begin(), c.eos_token_ids.end());
  c.eos_token_ids.erase(std::unique(c.eos_token_ids.begin(), c.eos_token_ids.end()),
                        c.eos_token_ids.end());
  return c;
}

std::string model_config_json(const ModelConfig& c) {
  json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rope_theta", c.rope_theta},
      {"rms_norm_eps", c.rms_norm_eps},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"torch_dtype", c.torch_dtype},
      {"bos_token_id", c.bos_token_id},
  };
  j["eos_token_id"] = c.eos_token_ids.size() == 1 ? json(c.eos_token_ids[0])
                                                  : json(c.eos_token_ids);
  switch (c.rope_scaling) {
    case RopeScaling::none: j["rope_scaling"] = nullptr; break;
    case RopeScaling::linear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_factor}};
      break;
    case RopeScaling::llama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_factor},
                           {"low_freq_factor", c.rope_low_freq_factor},
                           {"high_freq_factor", c.rope_high_freq_factor},
                           {"original_max_position_embeddings", c.rope_original_max_position}};
      break;
  }
  return j.dump(2) + "\n";
}

}  // namespace qsweep
