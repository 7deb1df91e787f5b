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
  // Hidden dimensions given large activations, as trained LLMs have a few (LLM.int8's outlier
  // features): their entries of every layer's input norms are set to outlier_scale, so the
  // inputs of q/k/v/gate/up carry values far above the others in those columns.
  int outliers = 0;
  double outlier_scale = 20.0;
};

// The hidden dimensions a model made with `init` has its outliers in, sorted; drawn from the
// seed by a generator of their own, so the other weights equal those of a model without them.
std::vector<int64_t> outlier_dims(const RandomInit& init, int64_t hidden_size);

// Writes OUT/config.json, OUT/generation_config.json and OUT/model.safetensors (weights drawn
// from N(0, std), norms at 1, as transformers initialises a fresh LlamaForCausalLM, except
// the outlier dimensions of `init`).
void write_random_model(const ModelConfig& config, const RandomInit& init, const std::string& out);

}  // namespace qsweep
