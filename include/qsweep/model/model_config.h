#pragma once
// A Hugging Face Llama-family `config.json` as plain data (Llama 2/3/3.1/3.2, TinyLlama,
// SmolLM-style). No libtorch here: the sweep spec and the store read it too.
#include <string>
#include <vector>

namespace qsweep {

enum class RopeScaling { none, linear, llama3 };

struct ModelConfig {
  std::string source;                  // the config.json path, for error messages
  std::string model_type = "llama";
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;                    // hidden_size / num_heads unless config says otherwise
  int max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  RopeScaling rope_scaling = RopeScaling::none;
  double rope_factor = 1.0;            // linear and llama3
  double rope_low_freq_factor = 1.0;   // llama3
  double rope_high_freq_factor = 4.0;  // llama3
  int rope_original_max_position = 8192;  // llama3
  std::vector<int> eos_token_ids;      // config.json and generation_config.json together
  int bos_token_id = -1;
  std::string torch_dtype = "float32";  // dtype the weights were saved in
};

// Reads DIR/config.json (and DIR/generation_config.json for EOS ids when present). Errors name
// the file and key.
ModelConfig load_model_config(const std::string& model_dir);

// The JSON text transformers writes for this config (make-model uses it).
std::string model_config_json(const ModelConfig& config);

}  // namespace qsweep
