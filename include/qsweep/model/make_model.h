#pragma once
// Random-init Llama models written as real Hugging Face directories: no pretrained weights can be
// downloaded where qsweep is developed and tested, so the project makes its own, of the exact
// shapes of the models a study runs.
#include "qsweep/model/model_config.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qsweep {

std::vector<std::string> model_preset_names();
// The config of a named preset ("tiny", "llama-3.2-1b", ...) with the tokenizer's vocab size.
ModelConfig model_preset(const std::string& name, int vocab_size);

struct RandomInit {
  uint64_t seed = 0;
  double std = 0.02;               // transformers' initializer_range
  at::ScalarType save_dtype = at::kFloat;
};

// Writes OUT/config.json, OUT/generation_config.json and OUT/model.safetensors (weights drawn
// from N(0, std), norms at 1, as transformers initialises a fresh LlamaForCausalLM).
void write_random_model(const ModelConfig& config, const RandomInit& init, const std::string& out);

}  // namespace qsweep
