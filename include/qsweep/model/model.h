#pragma once
// A loaded Llama-family model: its config and weights on one device in one compute dtype.
#include "qsweep/model/linear.h"
#include "qsweep/model/model_config.h"
#include "qsweep/util/dtype.h"

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

namespace qsweep {

struct LayerWeights {
  at::Tensor input_norm;          // [hidden]
  at::Tensor post_attention_norm; // [hidden]
  Linear q, k, v, o;
  Linear gate, up, down;
  // q|k|v and gate|up stacked along the output dimension, once a model is ready to run
  // (stacked_projections.h); the separate projections are then views into them.
  std::optional<Linear> qkv, gate_up;
};

struct Model {
  ModelConfig config;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  at::Tensor embed;               // [vocab, hidden]
  std::vector<LayerWeights> layers;
  at::Tensor final_norm;          // [hidden]
  Linear lm_head;                 // shares embed's storage when embeddings are tied
  at::Tensor inv_freq;            // RoPE inverse frequencies (float32), scaling applied
};

// libtorch's scalar type for a compute dtype, and back (an error for any other scalar type).
at::ScalarType scalar_type(DType dtype);
DType dtype_of(at::ScalarType type);

struct LoadOptions {
  DType dtype = DType::fp32;
  at::Device device = at::kCPU;
};

// Reads DIR/config.json and the safetensors weights. Errors name the file and tensor.
Model load_model(const std::string& dir, const LoadOptions& options);

// Bytes of all weights as held on the device (tied embeddings counted once).
int64_t model_bytes(const Model& model);
// Stored bits per weight of the decoder layers' projections (the layers quantization targets).
double projection_bits_per_weight(const Model& model);

// The decoder layers' projections with their Hugging Face module names
// ("model.layers.3.self_attn.q_proj"), in the order checkpoints list them.
struct NamedProjection {
  std::string name;
  const Linear* linear;
};
std::vector<NamedProjection> projections(const Model& model);

// RoPE inverse frequencies for the config's rope_theta, head_dim and scaling, computed as
// transformers' rope initialisation does (float32).
at::Tensor rope_inverse_frequencies(const ModelConfig& config);

}  // namespace qsweep
