#include "qsweep/model/engine.h"

#include "layer_ops.h"
#include "qsweep/util/error.h"

#include <ATen/ATen.h>

#include <cmath>

#ifdef QSWEEP_CUDA
#include "qsweep/kernels/decode_kernels.h"

#include <cstdlib>
#include <cstring>
#endif

namespace qsweep {
namespace {

using ops::lowest_value;
using ops::rms_norm;

// Additive mask [batch, 1, T, length + T]: a query sees real keys at or before its own slot.
at::Tensor attention_bias(const KVCache& cache, int64_t t, at::ScalarType dtype) {
  const int64_t total = cache.length + t;
  const at::Device device = cache.key_mask.device();
  const at::Tensor query_slot = at::arange(cache.length, total, at::TensorOptions().device(device));
  const at::Tensor key_slot = at::arange(0, total, at::TensorOptions().device(device));
  const at::Tensor causal = key_slot.unsqueeze(0) <= query_slot.unsqueeze(1);          // [T, total]
  const at::Tensor self = key_slot.unsqueeze(0) == query_slot.unsqueeze(1);
  // A pad query also sees itself, so no row is fully masked: an all-masked row would turn into
  // NaN and reach real rows through the cached keys of the pad slot.
  const at::Tensor allowed =
      (causal.unsqueeze(0) & cache.key_mask.narrow(1, 0, total).unsqueeze(1)) | self.unsqueeze(0);
  return at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype).device(device))
      .masked_fill_(allowed.logical_not(), lowest_value(dtype))
      .unsqueeze(1);
}

// Where a pass writes its keys and values: slots [start, start + t) known on the host (prefill),
// or one slot per row held in a device tensor (graph-capturable decode), which then attends
// over the whole cache and relies on the key mask for unfilled slots.
struct CacheWrite {
  int64_t start = 0;
  at::Tensor slot;  // [batch] int64
  at::Tensor rows;  // arange(batch), to pair each row with its slot
};

#ifdef QSWEEP_CUDA
// A prefill's attention with RoPE and the cache write in one kernel (the decode step's, T tokens
// a row): as libtorch operations and copies they were a third of a 512-token bf16 prefill on an
// H200 (docs/performance.md, session 14).
at::Tensor fused_prefill_attention(const Model& m, const LayerWeights& l, int layer,
                                   const at::Tensor& x, const std::pair<at::Tensor, at::Tensor>& rope,
                                   const at::Tensor& bias, KVCache& cache, int64_t start) {
  const int64_t b = x.size(0), t = x.size(1), dim = m.config.head_dim;
  const std::vector<at::Tensor> y = ops::project_together(l.qkv, {&l.q, &l.k, &l.v}, x);
  const auto rows = [&](const at::Tensor& p) { return p.reshape({b * t, p.size(-1)}); };
  const auto table = [&](const at::Tensor& p) {
    return p.expand({b, 1, t, dim}).reshape({b * t, dim}).contiguous();
  };
  const at::Tensor q =
      cuda::rope_prefill_and_cache_write(rows(y[0]), rows(y[1]), rows(y[2]), table(rope.first),
                                         table(rope.second), cache.k[layer], cache.v[layer], start);
  const at::Tensor keys = cache.k[layer].narrow(2, 0, start + t),
                   values = cache.v[layer].narrow(2, 0, start + t);
  return linear_forward(l.o, ops::merge_heads(ops::attend(q, keys, values, bias)));
}
#endif

at::Tensor attention_block(const Model& m, const LayerWeights& l, int layer, const at::Tensor& x,
                           const std::pair<at::Tensor, at::Tensor>& rope, const at::Tensor& bias,
                           KVCache& cache, const CacheWrite& write, [[maybe_unused]] bool fused) {
#ifdef QSWEEP_CUDA
  if (fused && !write.slot.defined())
    return fused_prefill_attention(m, l, layer, x, rope, bias, cache, write.start);
#endif
  const ops::QKV h = ops::project_qkv(m, l, x, rope);
  const int64_t t = x.size(1);
  at::Tensor keys = cache.k[layer], values = cache.v[layer];
  if (write.slot.defined()) {
    // [batch, slots, kv_heads, D] views, so (row, slot) pairs index whole [kv_heads, D] entries.
    keys.transpose(1, 2).index_put_({write.rows, write.slot}, h.k.squeeze(2));
    values.transpose(1, 2).index_put_({write.rows, write.slot}, h.v.squeeze(2));
  } else {
    keys.narrow(2, write.start, t).copy_(h.k);
    values.narrow(2, write.start, t).copy_(h.v);
    keys = keys.narrow(2, 0, write.start + t);
    values = values.narrow(2, 0, write.start + t);
  }
  return linear_forward(l.o, ops::merge_heads(ops::attend(h.q, keys, values, bias)));
}

}  // namespace

KVCache make_kv_cache(const Model& m, int64_t batch, int64_t capacity) {
  KVCache cache;
  cache.capacity = capacity;
  const auto options = at::TensorOptions().dtype(m.dtype).device(m.device);
  // Zeros, not empty: decode_step attends over every slot and masks the unfilled ones, and a
  // masked score only vanishes if the slot's key and value are finite (0 * NaN is NaN).
  for (int i = 0; i < m.config.num_layers; ++i) {
    cache.k.push_back(at::zeros({batch, m.config.num_kv_heads, capacity, m.config.head_dim}, options));
    cache.v.push_back(at::zeros({batch, m.config.num_kv_heads, capacity, m.config.head_dim}, options));
  }
  cache.key_mask = at::zeros({batch, capacity}, options.dtype(at::kBool));
  cache.attention_arrivals = at::zeros({batch * m.config.num_kv_heads}, options.dtype(at::kInt));
  return cache;
}

namespace {

// Whether the decode kernels (qsweep/kernels/decode_kernels.h) take the elementwise work of a
// pass: on a GPU unless QSWEEP_FUSED_DECODE=0 (read per call: tests switch it).
bool fused_kernels_wanted(const Model& m) {
#ifdef QSWEEP_CUDA
  const char* env = std::getenv("QSWEEP_FUSED_DECODE");
  return m.device.is_cuda() && !(env && std::strcmp(env, "0") == 0);
#else
  (void)m;
  return false;
#endif
}

// x += delta (where given), then the RMSNorm of x: one kernel where `fused`, which spares a
// prefill of many prompts the [tokens, hidden] float32 intermediates of the libtorch version.
at::Tensor add_then_norm(at::Tensor& x, const at::Tensor& delta, const at::Tensor& weight,
                         double eps, [[maybe_unused]] bool fused) {
#ifdef QSWEEP_CUDA
  if (fused) return cuda::add_rms_norm(x, delta, weight, eps);
#endif
  if (delta.defined()) x = x + delta;
  return rms_norm(x, weight, eps);
}

#ifdef QSWEEP_CUDA
// dtype(silu(gate(h))) * up(h) on the GPU, the projections taking h as `io` says (plain, or a
// norm's input): a stacked gate|up writes it from its GEMV where the format's kernel can
// (linear_forward); separate projections take silu_mul.
at::Tensor fused_mlp_product(const LayerWeights& l, const at::Tensor& h, GemvIo io) {
  if (l.gate_up) {
    io.output = GemvOutput::silu_gate_up;
    return linear_forward(*l.gate_up, h, io);
  }
  const at::Tensor gate = linear_forward(l.gate, h, io), up = linear_forward(l.up, h, io);
  const int64_t cols = gate.size(-1);
  const at::Tensor product = cuda::silu_mul(gate.reshape({-1, cols}), up.reshape({-1, cols}));
  std::vector<int64_t> shape(h.sizes().begin(), h.sizes().end());
  shape.back() = cols;
  return product.view(shape);
}
#endif

// down(silu(gate(h)) * up(h)), fused or with the libtorch operations.
at::Tensor mlp(const LayerWeights& l, const at::Tensor& h, [[maybe_unused]] bool fused) {
#ifdef QSWEEP_CUDA
  if (fused) return linear_forward(l.down, fused_mlp_product(l, h, {}));
#endif
  return ops::mlp(l, h);
}

// The norm that follows layer i's MLP: the next layer's input norm, or the final norm.
const at::Tensor& norm_after(const Model& m, size_t i) {
  return i + 1 < m.layers.size() ? m.layers[i + 1].input_norm : m.final_norm;
}

// The decoder stack and the final norm and projection, for tokens already embedded: logits of
// every position, or of one position per row, column `last[b]` ([batch, 1, vocab]). Each norm
// takes the residual add before it; the norm is per position, so the rows `last` picks may be
// gathered after the final one.
at::Tensor run_model(const Model& m, at::Tensor x, const at::Tensor& positions,
                     const at::Tensor& bias, KVCache& cache, const CacheWrite& write,
                     const at::Tensor& last) {
  const auto rope = ops::rope_tables(m, positions);
  const double eps = m.config.rms_norm_eps;
  const bool fused = fused_kernels_wanted(m);
  at::Tensor h = add_then_norm(x, {}, m.layers.front().input_norm, eps, fused);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerWeights& l = m.layers[i];
    const at::Tensor attended =
        attention_block(m, l, static_cast<int>(i), h, rope, bias, cache, write, fused);
    h = add_then_norm(x, attended, l.post_attention_norm, eps, fused);
    h = add_then_norm(x, mlp(l, h, fused), norm_after(m, i), eps, fused);
  }
  if (last.defined()) h = h.gather(1, last.view({-1, 1, 1}).expand({h.size(0), 1, h.size(2)}));
  return linear_forward(m.lm_head, h);
}

}  // namespace

at::Tensor forward(const Model& m, const at::Tensor& tokens, const at::Tensor& real,
                   const at::Tensor& positions, KVCache& cache, bool last_only) {
  const int64_t t = tokens.size(1);
  QSWEEP_CHECK(cache.length + t <= cache.capacity, "KV cache overflow: {} + {} slots > capacity {}",
               cache.length, t, cache.capacity);
  cache.key_mask.narrow(1, cache.length, t).copy_(real);
  const at::Tensor bias = attention_bias(cache, t, m.dtype);
  const at::Tensor last =
      last_only ? at::full({tokens.size(0)}, t - 1, tokens.options().dtype(at::kLong)) : at::Tensor();
  const at::Tensor logits = run_model(m, at::embedding(m.embed, tokens), positions, bias, cache,
                                      CacheWrite{cache.length, {}, {}}, last);
  cache.length += t;
  return logits;
}

at::Tensor forward_right_padded(const Model& m, const at::Tensor& tokens, const at::Tensor& lengths,
                                KVCache& cache) {
  const int64_t t = tokens.size(1);
  QSWEEP_CHECK(cache.length == 0 && t <= cache.capacity,
               "forward_right_padded needs a fresh cache of at least {} slots", t);
  const at::Tensor slots = at::arange(t, lengths.options()).unsqueeze(0);  // [1, T]
  cache.key_mask.narrow(1, 0, t).copy_(slots < lengths.unsqueeze(1));
  const at::Tensor logits =
      run_model(m, at::embedding(m.embed, tokens), slots.expand({tokens.size(0), t}), {}, cache,
                CacheWrite{0, {}, {}}, (lengths - 1).clamp_min(0));
  cache.length = t;
  return logits.squeeze(1);
}

at::Tensor forward_sequence(const Model& m, const std::vector<int32_t>& ids, bool last_only) {
  const int64_t t = static_cast<int64_t>(ids.size());
  const auto on = at::TensorOptions().device(m.device);
  KVCache cache = make_kv_cache(m, 1, t);
  const at::Tensor tokens = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
  return forward(m, tokens.view({1, t}).to(m.device), at::ones({1, t}, on.dtype(at::kBool)),
                 at::arange(t, on.dtype(at::kLong)).view({1, t}), cache, last_only)[0];
}

namespace {

at::Tensor unfused_decode_logits(const Model& m, KVCache& cache, const DecodeState& s) {
  const int64_t b = cache.key_mask.size(0);
  const at::Tensor rows = at::arange(b, s.slot.options());
  cache.key_mask.index_put_({rows, s.slot}, at::ones({}, cache.key_mask.options()));
  const auto options = at::TensorOptions().dtype(m.dtype).device(m.device);
  const at::Tensor bias = at::zeros(cache.key_mask.sizes(), options)
                              .masked_fill_(cache.key_mask.logical_not(), lowest_value(m.dtype))
                              .view({b, 1, 1, cache.capacity});
  return run_model(m, at::embedding(m.embed, s.tokens), s.positions, bias, cache,
                   CacheWrite{0, s.slot, rows}, {})
      .squeeze(1);
}

#ifdef QSWEEP_CUDA
bool fused_decode_wanted(const Model& m) {
  const ModelConfig& c = m.config;
  return fused_kernels_wanted(m) &&
         cuda::decode_attention_supported(c.num_heads, c.num_kv_heads, c.head_dim);
}

// Whether the fused step folds its norms and residual adds into the projections
// (QSWEEP_FOLD_NORMS=1, read per call; the same bits either way). Off by default: on an H200
// (docs/performance.md, session 14) each GEMV block norming its own input before its first
// weight load made the step slower than the norm kernels it spared (bf16 0.971 -> 0.994
// ms/token, NF4 + dq 0.855 -> 0.894, same call).
bool fold_norms_wanted() {
  const char* env = std::getenv("QSWEEP_FOLD_NORMS");
  return env && std::strcmp(env, "1") == 0;
}

// The same step with the embedding, the first norm and the RoPE tables in one kernel, RoPE with
// the cache write in one and attention over the filled slots in one, around the projections:
// gate|up writes SiLU * up itself (linear_forward, gemv_io.h), and the residual adds with the
// norms after them take one kernel each, or, folded, the projections do them too: q|k|v and
// gate|up norm the residual stream x themselves, o and down add their product into it.
at::Tensor fused_decode_logits(const Model& m, KVCache& cache, const DecodeState& s) {
  const ModelConfig& c = m.config;
  const double eps = c.rms_norm_eps, scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  const bool fold = fold_norms_wanted();
  const cuda::DecodeInputs in =
      cuda::decode_inputs(m.embed, s.tokens, s.positions, m.inv_freq,
                          m.layers.front().input_norm, eps);
  at::Tensor x = in.x, h = in.h;  // the residual stream, and the normed input of what follows
  // Adds the projection of delta into x; returns the norm of the sum, unless folded.
  const auto project_into_x = [&](const Linear& layer, const at::Tensor& delta,
                                  const at::Tensor& norm) {
    if (fold) return linear_forward(layer, delta, GemvIo::added_to(x));
    return cuda::add_rms_norm(x, linear_forward(layer, delta), norm, eps);
  };
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerWeights& l = m.layers[i];
    // decode_inputs normed the first layer's input; folded, each later layer norms its own.
    const bool own_norm = fold && i > 0;
    const std::vector<at::Tensor> qkv =
        ops::project_together(l.qkv, {&l.q, &l.k, &l.v}, own_norm ? x : h,
                              own_norm ? GemvIo::normed(l.input_norm, eps) : GemvIo());
    const at::Tensor q = cuda::rope_and_cache_write(qkv[0], qkv[1], qkv[2], in.cos, in.sin,
                                                    cache.k[i], cache.v[i], cache.key_mask, s.slot);
    const at::Tensor attended =
        cuda::decode_attention(q, cache.k[i], cache.v[i], cache.key_mask, s.slot, scale,
                               /*splits=*/0, cache.attention_arrivals);
    h = project_into_x(l.o, attended, l.post_attention_norm);
    const at::Tensor product =
        fold ? fused_mlp_product(l, x, GemvIo::normed(l.post_attention_norm, eps))
             : fused_mlp_product(l, h, {});
    h = project_into_x(l.down, product, norm_after(m, i));
  }
  return fold ? linear_forward(m.lm_head, x, GemvIo::normed(m.final_norm, eps))
              : linear_forward(m.lm_head, h);
}
#endif

}  // namespace

void decode_step(const Model& m, KVCache& cache, DecodeState& s) {
#ifdef QSWEEP_CUDA
  if (fused_decode_wanted(m)) {
    // The argmax kernel advances positions and slot as well: the step ends in it.
    cuda::argmax_last_dim(fused_decode_logits(m, cache, s).contiguous(), s.tokens, s.positions,
                          s.slot);
    return;
  }
#endif
  s.tokens.copy_(unfused_decode_logits(m, cache, s).argmax(-1, /*keepdim=*/true));
  s.positions.add_(1);
  s.slot.add_(1);
}

}  // namespace qsweep
