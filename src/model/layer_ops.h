#pragma once
// The pieces of a Llama decoder layer that the cached forward pass (engine.cpp) and the
// layer-by-layer calibration pass (layer_forward.cpp) share, so both compute the same numbers.
// Private to src/model.
#include "qsweep/model/model.h"

#include <ATen/core/Tensor.h>

#include <optional>
#include <utility>
#include <vector>

namespace qsweep::ops {

// transformers' LlamaRMSNorm: normalised in float32, scaled in x's dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
// RoPE cos/sin tables [batch, 1, T, head_dim] for positions [batch, T], in the model dtype.
std::pair<at::Tensor, at::Tensor> rope_tables(const Model& m, const at::Tensor& positions);
// Masked scores get the dtype's lowest value rather than -inf, which keeps them finite in sums.
double lowest_value(at::ScalarType dtype);

// The products of projections that share the input x: column slices of their stacked product
// where the layer has one (stacked_projections.h), else one product each; `io` a plain
// product's or a norm's (linear_forward).
std::vector<at::Tensor> project_together(const std::optional<Linear>& stacked,
                                         const std::vector<const Linear*>& parts,
                                         const at::Tensor& x, const GemvIo& io = {});

// Queries [B, heads, T, D] and keys, values [B, kv_heads, T, D] of x [B, T, hidden] (x already
// normalised), RoPE applied to queries and keys.
struct QKV {
  at::Tensor q, k, v;
};
QKV project_qkv(const Model& m, const LayerWeights& l, const at::Tensor& x,
                const std::pair<at::Tensor, at::Tensor>& rope);
// Attention of q [B, H, T, D] over k, v [B, KV, S, D] with an additive bias [B, 1, T, S]
// (query heads h*G..h*G+G-1 share kv head h), or causal without a bias; [B, H, T, D].
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& bias);
// Heads [B, H, T, D] back to [B, T, H * D], the input of o_proj.
at::Tensor merge_heads(const at::Tensor& heads);
// down(silu(gate(x)) * up(x)) and its input, the product.
at::Tensor mlp_product(const LayerWeights& l, const at::Tensor& x);
at::Tensor mlp(const LayerWeights& l, const at::Tensor& x);

}  // namespace qsweep::ops
