#include "qsweep/model/model.h"
#include "qsweep/model/check_weights.h"

#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/model/quantized_checkpoint.h"
#include "qsweep/model/safetensors.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>

namespace qsweep {

at::Tensor rope_inverse_frequencies(const ModelConfig& c) {
  const at::Tensor exponents =
      at::arange(0, c.head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
      static_cast<double>(c.head_dim);
  at::Tensor inv_freq = 1.0 / at::pow(c.rope_theta, exponents);
  switch (c.rope_scaling) {
    case RopeScaling::none: return inv_freq;
    case RopeScaling::linear: return inv_freq / c.rope_factor;
    case RopeScaling::llama3: {
      // Llama 3.1's frequency-dependent scaling: long wavelengths are divided by the factor,
      // short ones kept, and the band between blended smoothly.
      const double old_len = c.rope_original_max_position;
      const double low_wavelen = old_len / c.rope_low_freq_factor;
      const double high_wavelen = old_len / c.rope_high_freq_factor;
      const at::Tensor wavelen = 2 * M_PI / inv_freq;
      at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / c.rope_factor, inv_freq);
      const at::Tensor smooth = (old_len / wavelen - c.rope_low_freq_factor) /
                                (c.rope_high_freq_factor - c.rope_low_freq_factor);
      const at::Tensor smoothed = (1 - smooth) * scaled / c.rope_factor + smooth * scaled;
      const at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
      return at::where(medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

at::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::fp32: return at::kFloat;
    case DType::fp16: return at::kHalf;
    case DType::bf16: return at::kBFloat16;
  }
  fail("unknown dtype {}", static_cast<int>(dtype));
}

DType dtype_of(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return DType::fp32;
    case at::kHalf: return DType::fp16;
    case at::kBFloat16: return DType::bf16;
    default: fail("{} is not a compute dtype (fp32, fp16, bf16)", c10::toString(type));
  }
}

std::vector<NamedProjection> projections(const Model& m) {
  std::vector<NamedProjection> out;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const LayerWeights& l = m.layers[i];
    for (const auto& [name, layer] :
         {std::pair{"self_attn.q_proj", &l.q}, {"self_attn.k_proj", &l.k},
          {"self_attn.v_proj", &l.v}, {"self_attn.o_proj", &l.o}, {"mlp.gate_proj", &l.gate},
          {"mlp.up_proj", &l.up}, {"mlp.down_proj", &l.down}})
      out.push_back({p + name, layer});
  }
  return out;
}

namespace {

// The seven linears of a decoder layer: module name under "model.layers.N.", where the loader
// puts it, and its [out, in] as config.json implies them.
struct LayerLinear {
  const char* module;
  Linear LayerWeights::*member;
  int64_t out, in;
};

std::vector<LayerLinear> layer_linears(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q_out = int64_t(c.num_heads) * c.head_dim,
                kv_out = int64_t(c.num_kv_heads) * c.head_dim, ff = c.intermediate_size;
  return {{"self_attn.q_proj", &LayerWeights::q, q_out, h},
          {"self_attn.k_proj", &LayerWeights::k, kv_out, h},
          {"self_attn.v_proj", &LayerWeights::v, kv_out, h},
          {"self_attn.o_proj", &LayerWeights::o, h, q_out},
          {"mlp.gate_proj", &LayerWeights::gate, ff, h},
          {"mlp.up_proj", &LayerWeights::up, ff, h},
          {"mlp.down_proj", &LayerWeights::down, h, ff}};
}

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

// Every tensor load_model reads, from the headers alone (no weight bytes are touched): present,
// a float, of config.json's shape. A pre-quantized checkpoint's quantized linears are checked by
// read_checkpoint_linear as it reads them, since their layout is in their own tensors.
void check_weights(const WeightFiles& files, const ModelConfig& c,
                   const CheckpointQuantization& stored) {
  const int64_t h = c.hidden_size;
  const bool dense = stored.format == CheckpointFormat::none;
  files.check_float("model.embed_tokens.weight", {c.vocab_size, h});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    files.check_float(p + "input_layernorm.weight", {h});
    files.check_float(p + "post_attention_layernorm.weight", {h});
    if (dense)
      for (const LayerLinear& l : layer_linears(c)) files.check_float(p + l.module + ".weight", {l.out, l.in});
  }
  files.check_float("model.norm.weight", {h});
  if (dense && !c.tie_word_embeddings) files.check_float("lm_head.weight", {c.vocab_size, h});
}

}  // namespace

void check_model_weights(const std::string& dir) {
  check_weights(WeightFiles::open_model_dir(dir), load_model_config(dir),
                read_checkpoint_quantization(dir));
}

Model load_model(const std::string& dir, const LoadOptions& options) {
#if TORCH_VERSION_MAJOR < 2
  if (options.dtype == DType::fp16 && options.device.is_cpu())
    fail("fp16 on the CPU: libtorch {} has no CPU half-precision matmul; run fp16 configs on a GPU, "
         "or use bf16 or fp32 on the CPU", TORCH_VERSION);
#endif
  Model m;
  m.config = load_model_config(dir);
  m.device = options.device;
  m.dtype = scalar_type(options.dtype);
  const ModelConfig& c = m.config;
  const WeightFiles files = WeightFiles::open_model_dir(dir);
  // A pre-quantized checkpoint (config.json's quantization_config) keeps its linears' format.
  const CheckpointQuantization stored = read_checkpoint_quantization(dir);
  // Fails on a missing or mislabelled tensor before gigabytes are copied to the device.
  check_weights(files, c, stored);
  auto load = [&](const std::string& name, std::vector<int64_t> shape) {
    return files.load(name, shape, m.dtype, options.device);
  };
  auto linear = [&](const std::string& module, int64_t out, int64_t in) {
    if (stored.format != CheckpointFormat::none)
      return read_checkpoint_linear(files, stored, module, out, in, m.dtype, options.device);
    return Linear{DenseWeight{load(module + ".weight", {out, in})}};
  };
  const int64_t h = c.hidden_size;
  m.embed = load("model.embed_tokens.weight", {c.vocab_size, h});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerWeights l;
    l.input_norm = load(p + "input_layernorm.weight", {h});
    l.post_attention_norm = load(p + "post_attention_layernorm.weight", {h});
    for (const LayerLinear& ll : layer_linears(c)) l.*ll.member = linear(p + ll.module, ll.out, ll.in);
    m.layers.push_back(std::move(l));
  }
  m.final_norm = load("model.norm.weight", {h});
  m.lm_head = c.tie_word_embeddings ? Linear{DenseWeight{m.embed}}
                                    : linear("lm_head", c.vocab_size, h);
  m.inv_freq = rope_inverse_frequencies(c).to(options.device);
  log_debug("loaded {} ({} layers, {} MB on {})", dir, c.num_layers, model_bytes(m) >> 20,
            options.device.str());
  return m;
}

double projection_bits_per_weight(const Model& m) {
  double bytes = 0, weights = 0;
  for (const NamedProjection& p : projections(m)) {
    bytes += static_cast<double>(linear_bytes(*p.linear));
    weights += static_cast<double>(linear_in_features(*p.linear) * linear_out_features(*p.linear));
  }
  return weights > 0 ? 8 * bytes / weights : 0;
}

int64_t model_bytes(const Model& m) {
  auto bytes = [](const at::Tensor& t) { return t.numel() * t.element_size(); };
  int64_t total = bytes(m.embed) + bytes(m.final_norm);
  for (const auto& l : m.layers)
    total += bytes(l.input_norm) + bytes(l.post_attention_norm) + linear_bytes(l.q) +
             linear_bytes(l.k) + linear_bytes(l.v) + linear_bytes(l.o) + linear_bytes(l.gate) +
             linear_bytes(l.up) + linear_bytes(l.down);
  // A tied lm_head is the embedding table itself, unless quantization gave it its own weight.
  const auto* dense = std::get_if<DenseWeight>(&m.lm_head.weight);
  if (!dense || !dense->weight.is_same(m.embed)) total += linear_bytes(m.lm_head);
  return total;
}

}  // namespace qsweep
