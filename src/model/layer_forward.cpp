#include "qsweep/model/layer_forward.h"

#include "layer_ops.h"

#include <ATen/ATen.h>

namespace qsweep {
namespace {

std::pair<at::Tensor, at::Tensor> sequence_rope(const Model& m, const at::Tensor& x) {
  const at::Tensor positions =
      at::arange(x.size(1), at::TensorOptions().dtype(at::kLong).device(x.device()))
          .unsqueeze(0)
          .expand({x.size(0), x.size(1)});
  return ops::rope_tables(m, positions);
}

// The input of o_proj: causal attention of the normalised hidden state.
at::Tensor attention_heads(const Model& m, const LayerWeights& l, const at::Tensor& normed) {
  const ops::QKV h = ops::project_qkv(m, l, normed, sequence_rope(m, normed));
  return ops::merge_heads(ops::attend(h.q, h.k, h.v, {}));
}

at::Tensor after_attention(const Model& m, const LayerWeights& l, const at::Tensor& x) {
  const at::Tensor normed = ops::rms_norm(x, l.input_norm, m.config.rms_norm_eps);
  return x + linear_forward(l.o, attention_heads(m, l, normed));
}

}  // namespace

const char* projection_group_name(ProjectionGroup group) {
  switch (group) {
    case ProjectionGroup::qkv: return "qkv";
    case ProjectionGroup::o: return "o";
    case ProjectionGroup::gate_up: return "gate_up";
    case ProjectionGroup::down: return "down";
  }
  return "?";
}

std::vector<Linear*> group_linears(LayerWeights& l, ProjectionGroup group) {
  switch (group) {
    case ProjectionGroup::qkv: return {&l.q, &l.k, &l.v};
    case ProjectionGroup::o: return {&l.o};
    case ProjectionGroup::gate_up: return {&l.gate, &l.up};
    case ProjectionGroup::down: return {&l.down};
  }
  return {};
}

at::Tensor embed_tokens(const Model& m, const at::Tensor& tokens) {
  return at::embedding(m.embed, tokens);
}

at::Tensor layer_forward(const Model& m, const LayerWeights& l, const at::Tensor& x) {
  const at::Tensor h = after_attention(m, l, x);
  return h + ops::mlp(l, ops::rms_norm(h, l.post_attention_norm, m.config.rms_norm_eps));
}

at::Tensor group_input(const Model& m, const LayerWeights& l, const at::Tensor& x,
                       ProjectionGroup group) {
  const double eps = m.config.rms_norm_eps;
  switch (group) {
    case ProjectionGroup::qkv: return ops::rms_norm(x, l.input_norm, eps);
    case ProjectionGroup::o: return attention_heads(m, l, ops::rms_norm(x, l.input_norm, eps));
    case ProjectionGroup::gate_up:
      return ops::rms_norm(after_attention(m, l, x), l.post_attention_norm, eps);
    case ProjectionGroup::down:
      return ops::mlp_product(
          l, ops::rms_norm(after_attention(m, l, x), l.post_attention_norm, eps));
  }
  return {};
}

at::Tensor group_output(const Model& m, const LayerWeights& l, const at::Tensor& input,
                        ProjectionGroup group) {
  switch (group) {
    case ProjectionGroup::qkv: return linear_forward(l.o, attention_heads(m, l, input));
    case ProjectionGroup::o: return linear_forward(l.o, input);
    case ProjectionGroup::gate_up: return ops::mlp(l, input);
    case ProjectionGroup::down: return linear_forward(l.down, input);
  }
  return {};
}

}  // namespace qsweep
