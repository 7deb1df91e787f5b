#pragma once
// The Llama forward pass over a preallocated KV cache: batched prefill and decode with left
// padding. Written to match transformers' LlamaForCausalLM numerically (same op order and
// float32 islands: RMSNorm, RoPE tables, softmax).
#include "qsweep/model.h"

#include <ATen/core/Tensor.h>

#include <vector>

namespace qsweep {

struct KVCache {
  std::vector<at::Tensor> k, v;   // per layer [batch, kv_heads, capacity, head_dim]
  at::Tensor key_mask;            // [batch, capacity] bool: slot holds a real (non-pad) token
  int64_t length = 0;             // slots filled so far (same for every row: left padding)
  int64_t capacity = 0;
};

KVCache make_kv_cache(const Model& model, int64_t batch, int64_t capacity);

// Runs tokens [batch, T] into cache slots [length, length + T). `real` [batch, T] (bool) marks
// non-pad tokens; positions [batch, T] are their RoPE positions. Returns logits [batch, T, vocab]
// in the model dtype, or only for the last slot ([batch, 1, vocab]) when last_only is set, which
// spares prefill the vocab-sized projection of every prompt token.
at::Tensor forward(const Model& model, const at::Tensor& tokens, const at::Tensor& real,
                   const at::Tensor& positions, KVCache& cache, bool last_only);

}  // namespace qsweep
