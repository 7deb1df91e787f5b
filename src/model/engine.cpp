#include "qsweep/model/engine.h"

#include "qsweep/util/error.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

// libtorch >= 2.5 has fused attention with grouped-query support; 1.13 (Debian's CPU build) has
// neither, and gets the same computation written out.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define QSWEEP_HAVE_SDPA_GQA 1
#endif

namespace qsweep {
namespace {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor h = x.to(at::kFloat);
  const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (h * at::rsqrt(variance + eps)).to(x.scalar_type());
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// cos/sin tables [batch, 1, T, head_dim] for the given positions, in the model dtype.
std::pair<at::Tensor, at::Tensor> rope_tables(const Model& m, const at::Tensor& positions) {
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * m.inv_freq;  // [B, T, D/2]
  const at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);
  return {emb.cos().to(m.dtype), emb.sin().to(m.dtype)};
}

// Masked scores get the dtype's lowest value rather than -inf, which keeps them finite in sums.
double lowest_value(at::ScalarType dtype) {
  return dtype == at::kFloat ? std::numeric_limits<float>::lowest()
         : dtype == at::kHalf ? -65504.0
                              : -3.3895313892515355e38;
}

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
  const double lowest = dtype == at::kFloat ? std::numeric_limits<float>::lowest()
                        : dtype == at::kHalf ? -65504.0
                                             : -3.3895313892515355e38;
  return at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype).device(device))
      .masked_fill_(allowed.logical_not(), lowest)
      .unsqueeze(1);
}

// q [B, H, T, D]; k, v [B, KV, S, D]; bias [B, 1, T, S]. Query heads h*G..h*G+G-1 share kv head h.
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& bias) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
#ifdef QSWEEP_HAVE_SDPA_GQA
  return at::scaled_dot_product_attention(q, k, v, bias, 0.0, false, scale, /*enable_gqa=*/true);
#else
  // Folding the G query heads of a group into the row dimension lets one batched matmul serve
  // the whole group without copying the cache G times.
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3), kv = k.size(1);
  const int64_t g = h / kv, s = k.size(2);
  const at::Tensor qg = q.reshape({b, kv, g * t, d});
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).mul_(scale).view({b, kv, g, t, s});
  scores = scores + bias.unsqueeze(1);
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(probs.view({b, kv, g * t, s}), v).view({b, h, t, d});
#endif
}

// Where a pass writes its keys and values: slots [start, start + t) known on the host (prefill,
// eager decode), or the one slot held in a device tensor (graph-capturable decode), which then
// attends over the whole cache and relies on the key mask for unfilled slots.
struct CacheWrite {
  int64_t start = 0;
  at::Tensor slot;
};

at::Tensor attention_block(const Model& m, const LayerWeights& l, int layer, const at::Tensor& x,
                           const std::pair<at::Tensor, at::Tensor>& rope, const at::Tensor& bias,
                           KVCache& cache, const CacheWrite& write) {
  const ModelConfig& c = m.config;
  const int64_t b = x.size(0), t = x.size(1);
  auto heads = [&](const Linear& proj, int n) {
    return linear_forward(proj, x).view({b, t, n, c.head_dim}).transpose(1, 2);
  };
  at::Tensor q = heads(l.q, c.num_heads), k = heads(l.k, c.num_kv_heads);
  const at::Tensor v = heads(l.v, c.num_kv_heads);
  q = q * rope.first + rotate_half(q) * rope.second;
  k = k * rope.first + rotate_half(k) * rope.second;
  at::Tensor keys = cache.k[layer], values = cache.v[layer];
  if (write.slot.defined()) {
    keys.index_copy_(2, write.slot, k);
    values.index_copy_(2, write.slot, v);
  } else {
    keys.narrow(2, write.start, t).copy_(k);
    values.narrow(2, write.start, t).copy_(v);
    keys = keys.narrow(2, 0, write.start + t);
    values = values.narrow(2, 0, write.start + t);
  }
  const at::Tensor out = attend(q, keys, values, bias);
  return linear_forward(l.o, out.transpose(1, 2).reshape({b, t, c.num_heads * c.head_dim}));
}

at::Tensor mlp_block(const LayerWeights& l, const at::Tensor& x) {
  return linear_forward(l.down, at::silu(linear_forward(l.gate, x)) * linear_forward(l.up, x));
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
  return cache;
}

namespace {

// The decoder stack and the final norm and projection, for tokens already embedded.
at::Tensor run_model(const Model& m, at::Tensor x, const at::Tensor& positions,
                     const at::Tensor& bias, KVCache& cache, const CacheWrite& write,
                     bool last_only) {
  const auto rope = rope_tables(m, positions);
  const double eps = m.config.rms_norm_eps;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerWeights& l = m.layers[i];
    x = x + attention_block(m, l, static_cast<int>(i), rms_norm(x, l.input_norm, eps), rope, bias,
                            cache, write);
    x = x + mlp_block(l, rms_norm(x, l.post_attention_norm, eps));
  }
  if (last_only) x = x.narrow(1, x.size(1) - 1, 1);
  return linear_forward(m.lm_head, rms_norm(x, m.final_norm, eps));
}

}  // namespace

at::Tensor forward(const Model& m, const at::Tensor& tokens, const at::Tensor& real,
                   const at::Tensor& positions, KVCache& cache, bool last_only) {
  const int64_t t = tokens.size(1);
  QSWEEP_CHECK(cache.length + t <= cache.capacity, "KV cache overflow: {} + {} slots > capacity {}",
               cache.length, t, cache.capacity);
  cache.key_mask.narrow(1, cache.length, t).copy_(real);
  const at::Tensor bias = attention_bias(cache, t, m.dtype);
  const at::Tensor logits = run_model(m, at::embedding(m.embed, tokens), positions, bias, cache,
                                      CacheWrite{cache.length, {}}, last_only);
  cache.length += t;
  return logits;
}

at::Tensor forward_sequence(const Model& m, const std::vector<int32_t>& ids, bool last_only) {
  const int64_t t = static_cast<int64_t>(ids.size());
  const auto on = at::TensorOptions().device(m.device);
  KVCache cache = make_kv_cache(m, 1, t);
  const at::Tensor tokens = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
  return forward(m, tokens.view({1, t}).to(m.device), at::ones({1, t}, on.dtype(at::kBool)),
                 at::arange(t, on.dtype(at::kLong)).view({1, t}), cache, last_only)[0];
}

void decode_step(const Model& m, KVCache& cache, DecodeState& s) {
  cache.key_mask.index_fill_(1, s.slot, true);
  const auto options = at::TensorOptions().dtype(m.dtype).device(m.device);
  const at::Tensor bias = at::zeros(cache.key_mask.sizes(), options)
                              .masked_fill_(cache.key_mask.logical_not(), lowest_value(m.dtype))
                              .view({cache.key_mask.size(0), 1, 1, cache.capacity});
  const at::Tensor logits = run_model(m, at::embedding(m.embed, s.tokens), s.positions, bias, cache,
                                      CacheWrite{0, s.slot}, true);
  s.tokens.copy_(logits.argmax(-1));
  s.positions.add_(1);
  s.slot.add_(1);
}

}  // namespace qsweep
