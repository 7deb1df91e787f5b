#include "qsweep/bench/work_counts.h"

#include "qsweep/model/model.h"

#include <c10/core/ScalarType.h>

namespace qsweep {
namespace {

double tensor_bytes(const at::Tensor& t) { return static_cast<double>(t.numel() * t.element_size()); }

// Everything a step reads whatever the batch and context: projections, lm_head and norms.
double weight_bytes_per_step(const Model& m) {
  double bytes = tensor_bytes(m.final_norm) + static_cast<double>(linear_bytes(m.lm_head));
  for (const LayerWeights& l : m.layers) {
    bytes += tensor_bytes(l.input_norm) + tensor_bytes(l.post_attention_norm);
    for (const Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      bytes += static_cast<double>(linear_bytes(*p));
  }
  return bytes;
}

// Keys and values of one cache slot of one row, over all layers (the cache holds the model dtype).
double kv_bytes_per_slot(const Model& m) {
  const ModelConfig& c = m.config;
  return 2.0 * c.num_layers * c.num_kv_heads * c.head_dim *
         static_cast<double>(c10::elementSize(m.dtype));
}

}  // namespace

double decode_step_bytes(const Model& m, int64_t batch, int64_t context) {
  const double gathered =
      static_cast<double>(batch * m.config.hidden_size * m.embed.element_size());
  return weight_bytes_per_step(m) + gathered +
         static_cast<double>(batch * context) * kv_bytes_per_slot(m);
}

double decode_bytes(const Model& m, int64_t batch, int64_t filled, int64_t steps) {
  double bytes = 0;
  for (int64_t s = 0; s < steps; ++s) bytes += decode_step_bytes(m, batch, filled + s + 1);
  return bytes;
}

double prefill_flops(const Model& m, int64_t batch, int64_t tokens) {
  double projection_weights = 0;
  for (const NamedProjection& p : projections(m))
    projection_weights += static_cast<double>(linear_in_features(*p.linear)) *
                          static_cast<double>(linear_out_features(*p.linear));
  const double lm_head_weights = static_cast<double>(linear_in_features(m.lm_head)) *
                                 static_cast<double>(linear_out_features(m.lm_head));
  const ModelConfig& c = m.config;
  const double t = static_cast<double>(tokens);
  const double causal_pairs = t * (t + 1) / 2;
  const double attention = 4.0 * c.num_layers * c.num_heads * c.head_dim * causal_pairs;
  return static_cast<double>(batch) *
         (2 * projection_weights * t + 2 * lm_head_weights + attention);
}

}  // namespace qsweep
