#include "qsweep/model/make_model.h"

#include "qsweep/model/model.h"

#include "qsweep/util/error.h"
#include "qsweep/model/safetensors.h"
#include "qsweep/util/text.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <filesystem>

namespace qsweep {

std::vector<std::string> model_preset_names() {
  return {"tiny", "small", "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"};
}

ModelConfig model_preset(const std::string& name, int vocab_size) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  // Llama 3.x conventions; presets only change the shape.
  c.rope_theta = 500000.0;
  c.rms_norm_eps = 1e-5;
  c.rope_scaling = RopeScaling::llama3;
  c.rope_factor = 32.0;
  c.max_position_embeddings = 131072;
  c.tie_word_embeddings = true;
  auto shape = [&](int hidden, int ff, int layers, int heads, int kv_heads, int head_dim) {
    c.hidden_size = hidden;
    c.intermediate_size = ff;
    c.num_layers = layers;
    c.num_heads = heads;
    c.num_kv_heads = kv_heads;
    c.head_dim = head_dim;
  };
  if (name == "tiny") {
    shape(64, 192, 2, 4, 2, 16);
  } else if (name == "small") {
    shape(256, 768, 4, 8, 2, 32);
  } else if (name == "llama-3.2-1b") {
    shape(2048, 8192, 16, 32, 8, 64);
  } else if (name == "llama-3.2-3b") {
    shape(3072, 8192, 28, 24, 8, 128);
  } else if (name == "llama-3.1-8b") {
    shape(4096, 14336, 32, 32, 8, 128);
    c.rope_factor = 8.0;
    c.tie_word_embeddings = false;
  } else {
    fail("unknown model preset '{}' (presets: {})", name, fmt::join(model_preset_names(), ", "));
  }
  return c;
}

std::vector<int64_t> outlier_dims(const RandomInit& init, int64_t hidden_size) {
  if (init.outliers < 0 || init.outliers > hidden_size)
    fail("outliers must be between 0 and the hidden size {}, got {}", hidden_size, init.outliers);
  // A stream of its own (seed with the high bit flipped) leaves the weights' stream untouched.
  at::Generator gen = at::detail::createCPUGenerator(init.seed ^ (uint64_t(1) << 63));
  const at::Tensor dims =
      std::get<0>(at::randperm(hidden_size, gen, at::kLong).slice(0, 0, init.outliers).sort());
  return std::vector<int64_t>(dims.data_ptr<int64_t>(), dims.data_ptr<int64_t>() + dims.numel());
}

void write_random_model(const ModelConfig& c, const RandomInit& init, const std::string& out) {
  std::filesystem::create_directories(out);
  at::Generator gen = at::detail::createCPUGenerator(init.seed);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  auto normal = [&](const std::string& name, std::vector<int64_t> shape) {
    tensors.emplace_back(name, at::normal(0.0, init.std, shape, gen).to(init.save_dtype));
  };
  auto ones = [&](const std::string& name, int64_t n) {
    tensors.emplace_back(name, at::ones({n}, at::TensorOptions().dtype(init.save_dtype)));
  };
  const int64_t h = c.hidden_size, q = int64_t(c.num_heads) * c.head_dim,
                kv = int64_t(c.num_kv_heads) * c.head_dim;
  const at::Tensor outliers = at::tensor(at::ArrayRef<int64_t>(outlier_dims(init, h)), at::kLong);
  auto layer_norm = [&](const std::string& name) {
    at::Tensor w = at::ones({h}, at::kFloat).index_fill_(0, outliers, init.outlier_scale);
    tensors.emplace_back(name, w.to(init.save_dtype));
  };
  normal("model.embed_tokens.weight", {c.vocab_size, h});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    layer_norm(p + "input_layernorm.weight");
    layer_norm(p + "post_attention_layernorm.weight");
    normal(p + "self_attn.q_proj.weight", {q, h});
    normal(p + "self_attn.k_proj.weight", {kv, h});
    normal(p + "self_attn.v_proj.weight", {kv, h});
    normal(p + "self_attn.o_proj.weight", {h, q});
    normal(p + "mlp.gate_proj.weight", {c.intermediate_size, h});
    normal(p + "mlp.up_proj.weight", {c.intermediate_size, h});
    normal(p + "mlp.down_proj.weight", {h, c.intermediate_size});
  }
  ones("model.norm.weight", h);
  if (!c.tie_word_embeddings) normal("lm_head.weight", {c.vocab_size, h});

  ModelConfig saved = c;
  saved.torch_dtype = hf_dtype_name(dtype_of(init.save_dtype));
  write_file_atomic(out + "/config.json", model_config_json(saved));
  nlohmann::json generation = {{"bos_token_id", c.bos_token_id},
                               {"eos_token_id", c.eos_token_ids},
                               {"do_sample", false}};
  write_file_atomic(out + "/generation_config.json", generation.dump(2) + "\n");
  write_safetensors(out + "/model.safetensors", tensors);
}

}  // namespace qsweep
