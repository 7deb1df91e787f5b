#pragma once
// The decode step's small operations fused into one kernel each (the engine's fused path,
// engine.cpp). A Llama decode step at batch 1 is a few hundred tiny kernels when written with
// libtorch operations; these bring the elementwise parts of a layer from ~40 launches to one,
// RoPE with the cache write (the GEMVs norm their input, write SiLU * up and add into the
// residual themselves, gemv_io.h), and those around the layers to one at each end, and read
// the KV cache only up to each row's current slot. Every function launches
// on the current stream, never synchronizes the host and allocates only its result, so a
// captured decode step replays as one CUDA graph. On compute capability 9.0 each kernel may
// start while the one before it finishes (programmatic dependent launch; QSWEEP_PDL=0 turns it
// off), which changes no result. Tensors are contiguous CUDA float32, float16 or bfloat16 unless
// said otherwise; results round exactly where the unfused libtorch operations round.
#include <ATen/core/Tensor.h>

namespace qsweep::cuda {

// residual += delta (rounded to the dtype, as `x = x + delta`), then transformers' RMSNorm of
// the sum: weight * dtype(h * rsqrt(mean(h^2) + eps)) with the statistics in float32. delta
// may be undefined (a plain RMSNorm of residual, which is then left as it is). x [rows, hidden].
at::Tensor add_rms_norm(at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight,
                        double eps);

// The inputs of a decode step's first layer, in one kernel: x [B, hidden] = embed[tokens[b]]
// (the residual stream), h = RMSNorm(x) with norm_weight (as add_rms_norm), and cos, sin
// [B, head_dim] = cos, sin of positions[b] * inv_freq (float32 [head_dim / 2], each half of the
// head), rounded to embed's dtype as ops::rope_tables rounds them. tokens and positions are
// int64 with one element per row ([B, 1] or [B]).
struct DecodeInputs {
  at::Tensor x, h, cos, sin;
};
DecodeInputs decode_inputs(const at::Tensor& embed, const at::Tensor& tokens,
                           const at::Tensor& positions, const at::Tensor& inv_freq,
                           const at::Tensor& norm_weight, double eps);

// RoPE on q [B, heads * D] and k [B, kv_heads * D] (one token per row) with cos, sin [B, D]; the
// rotated k and v [B, kv_heads * D] written into k_cache, v_cache [B, kv_heads, capacity, D] at
// slot[b] (int64 [B]) and key_mask [B, capacity] (bool) set there. Returns the rotated q
// [B, heads, D]. q, k and v may be column slices of one stacked q|k|v product (rows strided).
at::Tensor rope_and_cache_write(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& cos, const at::Tensor& sin, at::Tensor& k_cache,
                                at::Tensor& v_cache, at::Tensor& key_mask, const at::Tensor& slot);

// The same for a prefill of T tokens per row: q [B * T, heads * D], k, v [B * T, kv_heads * D]
// (rows b * T + t, possibly column slices of one stacked product) and cos, sin [B * T, D]; the
// rotated k and v of token t of row b written at slot start + t, key_mask left as it is (the
// caller's padding rule). Returns the rotated q [B, heads, T, D], attention's layout.
at::Tensor rope_prefill_and_cache_write(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v, const at::Tensor& cos,
                                        const at::Tensor& sin, at::Tensor& k_cache,
                                        at::Tensor& v_cache, int64_t start);

// softmax(q k^T * scale) v for one query per row over cache slots [0, slot[b]] whose key_mask
// is set; query heads h * G .. h * G + G - 1 share kv head h. q [B, heads, D]; returns
// [B, heads * D] (o_proj's input). Scores, softmax and sums in float32. Where the batch's
// (row, kv head) pairs are too few to fill the GPU, or the cache is long, each row's slots are
// split over several blocks, and the last of a pair's blocks to finish merges their softmax
// parts (flash decoding, in one kernel); `splits` > 0 asks for that many blocks per (row, kv
// head) (1: one pass), as many more as a long cache needs; 0 lets the function choose: one pass
// up to 256 slots of cache, past it runs of at least 64 slots (QSWEEP_ATTENTION_MIN_RUN=N: N,
// 16 to 1,024, to measure the rule).
// `arrivals` (int32, at least B * kv_heads elements, all 0) counts the finished blocks of each
// pair and is left all 0 again: a KV cache's attention_arrivals, so that a captured step
// allocates nothing; undefined, the call makes its own.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache,
                            const at::Tensor& v_cache, const at::Tensor& key_mask,
                            const at::Tensor& slot, double scale, int64_t splits = 0,
                            const at::Tensor& arrivals = {});
// Whether decode_attention serves this shape on this GPU: head_dim 32, 64 or 128, at most 8
// query heads per kv head, and the shared memory of a run of 1,024 slots (any cache length).
bool decode_attention_supported(int64_t heads, int64_t kv_heads, int64_t head_dim);

// dtype(dtype(silu(gate)) * up), elementwise, as at::silu(gate) * up rounds. gate and up are
// [rows, cols], possibly the two halves of one stacked gate|up product; the result is
// contiguous.
at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up);

// out[r] = at::argmax(logits[r]) for each row r of logits [..., vocab]: the first index of the
// largest value, NaN above every number. out is int64 with one element per row (a decode
// state's tokens [B, 1]); written in place, so a captured step needs no copy after it.
// Where positions and slot are given (int64, one element per row: a decode state's), each row's
// are advanced by one in the same kernel, which then ends a greedy decode step.
void argmax_last_dim(const at::Tensor& logits, at::Tensor& out, const at::Tensor& positions = {},
                     const at::Tensor& slot = {});

}  // namespace qsweep::cuda
