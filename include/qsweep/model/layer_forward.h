#pragma once
// The decoder run one layer at a time on whole sequences, without a KV cache: what calibrated
// quantization (GPTQ, AWQ) needs to see the inputs of each projection and to replay a block
// with candidate weights. The same operations as the cached forward pass (engine.h).
#include "qsweep/model/model.h"

#include <ATen/core/Tensor.h>

namespace qsweep {

// The projections that read one input: q/k/v read the normalised hidden state, o the attention
// heads, gate/up the normalised hidden state after attention, down the MLP's product.
enum class ProjectionGroup { qkv, o, gate_up, down };
inline constexpr ProjectionGroup kProjectionGroups[] = {
    ProjectionGroup::qkv, ProjectionGroup::o, ProjectionGroup::gate_up, ProjectionGroup::down};
const char* projection_group_name(ProjectionGroup group);
// The group's projections in layer `l`, in checkpoint order (q, k, v; o; gate, up; down).
std::vector<Linear*> group_linears(LayerWeights& l, ProjectionGroup group);

// Hidden states [batch, T, hidden] of token ids [batch, T] (long): the embedding lookup.
at::Tensor embed_tokens(const Model& m, const at::Tensor& tokens);
// One decoder layer on hidden states x [batch, T, hidden] of unpadded sequences that start at
// position 0: its output, the next layer's input.
at::Tensor layer_forward(const Model& m, const LayerWeights& l, const at::Tensor& x);
// The input [batch, T, features] that `group` of layer `l` sees when x enters the layer,
// computing no more of the layer than that needs.
at::Tensor group_input(const Model& m, const LayerWeights& l, const at::Tensor& x,
                       ProjectionGroup group);
// What a group's projections feed, from the group's input: the attention block including o_proj
// (qkv), o_proj alone (o), the MLP including down_proj (gate_up), down_proj alone (down).
// Replaying it with candidate weights in `l` measures their error where it matters.
at::Tensor group_output(const Model& m, const LayerWeights& l, const at::Tensor& input,
                        ProjectionGroup group);

}  // namespace qsweep
