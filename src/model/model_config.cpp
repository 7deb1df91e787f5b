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

void add_eos_ids(const json& value, std::vector<int>& ids) {
  if (value.is_number_integer()) ids.push_back(value.get<int>());
  if (value.is_array())
    for (const auto& v : value)
      if (v.is_number_integer()) ids.push_back(v.get<int>());
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
  c.model_type = j.value("model_type", std::string("llama"));
  if (c.model_type != "llama")
    fail("{}: model_type '{}' is not supported (qsweep runs Llama-family models: 'llama')",
         c.source, c.model_type);
  c.vocab_size = required_int(j, "vocab_size", c.source);
  c.hidden_size = required_int(j, "hidden_size", c.source);
  c.intermediate_size = required_int(j, "intermediate_size", c.source);
  c.num_layers = required_int(j, "num_hidden_layers", c.source);
  c.num_heads = required_int(j, "num_attention_heads", c.source);
  c.num_kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                       ? required_int(j, "num_key_value_heads", c.source)
                       : c.num_heads;
  c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null()
                   ? required_int(j, "head_dim", c.source)
                   : c.hidden_size / c.num_heads;
  c.max_position_embeddings = j.value("max_position_embeddings", 2048);
  c.rope_theta = j.value("rope_theta", 10000.0);
  c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  c.torch_dtype = j.value("torch_dtype", std::string("float32"));
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
    c.bos_token_id = j["bos_token_id"].get<int>();
  if (c.num_heads % c.num_kv_heads != 0)
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", c.source,
         c.num_heads, c.num_kv_heads);
  read_rope_scaling(j, c);
  if (j.contains("eos_token_id")) add_eos_ids(j["eos_token_id"], c.eos_token_ids);
  const std::string generation = model_dir + "/generation_config.json";
  if (std::filesystem::exists(generation)) {
    const json g = parse_json_file(generation);
    if (g.contains("eos_token_id")) add_eos_ids(g["eos_token_id"], c.eos_token_ids);
  }
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
