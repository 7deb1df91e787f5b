#pragma once
// The Llama forward pass over a preallocated KV cache: batched prefill and decode with left
// padding. Written to match transformers' LlamaForCausalLM numerically (same op order and
// float32 islands: RMSNorm, RoPE tables, softmax).
#include "qsweep/model/model.h"

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

namespace qsweep {

struct KVCache {
  std::vector<at::Tensor> k, v;   // per layer [batch, kv_heads, capacity, head_dim]
  at::Tensor key_mask;            // [batch, capacity] bool: slot holds a real (non-pad) token
  int64_t length = 0;             // slots a forward pass has filled (pads included)
  int64_t capacity = 0;
  // [batch * kv_heads] int32 zeros: the GPU decode attention's count of finished blocks per
  // (row, kv head), which it leaves at 0 (decode_kernels.h).
  at::Tensor attention_arrivals;
};

KVCache make_kv_cache(const Model& model, int64_t batch, int64_t capacity);

// Runs tokens [batch, T] into cache slots [length, length + T). `real` [batch, T] (bool) marks
// non-pad tokens; positions [batch, T] are their RoPE positions. Returns logits [batch, T, vocab]
// in the model dtype, or only for the last slot ([batch, 1, vocab]) when last_only is set, which
// spares prefill the vocab-sized projection of every prompt token. On a GPU the residual adds
// with the RMSNorms after them and SiLU * up run in the decode step's kernels (decode_kernels.h;
// QSWEEP_FUSED_DECODE=0: libtorch's operations, as on the CPU).
at::Tensor forward(const Model& model, const at::Tensor& tokens, const at::Tensor& real,
                   const at::Tensor& positions, KVCache& cache, bool last_only);

// Prompts right-padded into a fresh cache: row b's tokens fill slots [0, lengths[b]) (int64
// [batch]), its pads the slots after them, masked in key_mask. Causal attention alone keeps
// every real token from seeing a pad, so no mask is built and fused (flash) attention serves
// the prefill; each row then decodes on from its own slot lengths[b] (DecodeState::slot),
// overwriting its pads. Returns the logits [batch, vocab] of each row's last token.
at::Tensor forward_right_padded(const Model& model, const at::Tensor& tokens,
                                const at::Tensor& lengths, KVCache& cache);

// Logits [T, vocab] of one unpadded sequence run in a fresh cache ([1, vocab]: the last token
// only, with last_only), in the model dtype.
at::Tensor forward_sequence(const Model& model, const std::vector<int32_t>& ids, bool last_only);

// Greedy decoding state kept on the device, so that a step needs nothing from the host and can
// be captured once and replayed as a CUDA graph.
struct DecodeState {
  at::Tensor tokens;     // [batch, 1] long: the token to feed next; a step overwrites it
  at::Tensor positions;  // [batch, 1] long: its RoPE position
  at::Tensor slot;       // [batch] long: the cache slot each row's token goes into
};

// One greedy step: feeds `tokens` into `slot`, attends over the cache (the key mask hides
// unfilled and pad slots), writes the argmax back into `tokens`, and advances positions and
// slot. On a GPU the step's elementwise work runs in fused kernels (qsweep/kernels/
// decode_kernels.h); QSWEEP_FUSED_DECODE=0 selects the libtorch operations instead, which the
// CPU always runs.
void decode_step(const Model& model, KVCache& cache, DecodeState& state);

// Runs decode_step, captured as a CUDA graph on the first step where the model is on a GPU and
// libtorch has CUDA graphs (one launch instead of hundreds per token), eagerly elsewhere.
// QSWEEP_CUDA_GRAPHS=0 turns capture off.
class Decoder {
 public:
  Decoder(const Model& model, KVCache& cache, DecodeState& state);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
  void step();

 private:
  struct Graph;
  const Model& model_;
  KVCache& cache_;
  DecodeState& state_;
  std::unique_ptr<Graph> graph_;
};

}  // namespace qsweep
