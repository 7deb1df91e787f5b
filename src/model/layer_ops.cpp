#include "layer_ops.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

// libtorch >= 2.5 has fused attention with grouped-query support; 1.13 (Debian's CPU build) has
// neither, and gets the same computation written out.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define QSWEEP_HAVE_SDPA_GQA 1
#endif

namespace qsweep::ops {
namespace {

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Without a bias, a query sees the keys at or before its own position (S == T).
at::Tensor causal_bias(const at::Tensor& q, int64_t s) {
  const int64_t t = q.size(2);
  const auto on = at::TensorOptions().device(q.device());
  const at::Tensor allowed = at::arange(s, on).unsqueeze(0) <= at::arange(s - t, s, on).unsqueeze(1);
  return at::zeros({t, s}, on.dtype(q.scalar_type()))
      .masked_fill_(allowed.logical_not(), lowest_value(q.scalar_type()))
      .view({1, 1, t, s});
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor h = x.to(at::kFloat);
  const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (h * at::rsqrt(variance + eps)).to(x.scalar_type());
}

std::pair<at::Tensor, at::Tensor> rope_tables(const Model& m, const at::Tensor& positions) {
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * m.inv_freq;  // [B, T, D/2]
  const at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);
  return {emb.cos().to(m.dtype), emb.sin().to(m.dtype)};
}

double lowest_value(at::ScalarType dtype) {
  return dtype == at::kFloat ? std::numeric_limits<float>::lowest()
         : dtype == at::kHalf ? -65504.0
                              : -3.3895313892515355e38;
}

std::vector<at::Tensor> project_together(const std::optional<Linear>& stacked,
                                         const std::vector<const Linear*>& parts,
                                         const at::Tensor& x, const GemvIo& io) {
  std::vector<at::Tensor> out;
  if (!stacked) {
    for (const Linear* p : parts) out.push_back(linear_forward(*p, x, io));
    return out;
  }
  const at::Tensor y = linear_forward(*stacked, x, io);
  int64_t first = 0;
  for (const Linear* p : parts) {
    const int64_t cols = linear_out_features(*p);
    out.push_back(y.narrow(-1, first, cols));
    first += cols;
  }
  return out;
}

QKV project_qkv(const Model& m, const LayerWeights& l, const at::Tensor& x,
                const std::pair<at::Tensor, at::Tensor>& rope) {
  const ModelConfig& c = m.config;
  const int64_t b = x.size(0), t = x.size(1);
  const std::vector<at::Tensor> y = project_together(l.qkv, {&l.q, &l.k, &l.v}, x);
  auto heads = [&](const at::Tensor& p, int n) {
    return p.view({b, t, n, c.head_dim}).transpose(1, 2);
  };
  QKV out{heads(y[0], c.num_heads), heads(y[1], c.num_kv_heads), heads(y[2], c.num_kv_heads)};
  out.q = out.q * rope.first + rotate_half(out.q) * rope.second;
  out.k = out.k * rope.first + rotate_half(out.k) * rope.second;
  return out;
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& bias) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
#ifdef QSWEEP_HAVE_SDPA_GQA
  if (!bias.defined())
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, scale,
                                            /*enable_gqa=*/true);
  // With a mask, grouped-query SDPA falls back to the math path, which holds every score of
  // every head in float32 (gigabytes for a batch of CoQA prompts); keys and values repeated
  // per query head let the memory-efficient kernel take the mask instead.
  if (q.is_cuda() && q.size(1) != k.size(1)) {
    const int64_t group = q.size(1) / k.size(1);
    return at::scaled_dot_product_attention(q, k.repeat_interleave(group, 1),
                                            v.repeat_interleave(group, 1), bias, 0.0, false, scale);
  }
  return at::scaled_dot_product_attention(q, k, v, bias, 0.0, false, scale, /*enable_gqa=*/true);
#else
  // Folding the G query heads of a group into the row dimension lets one batched matmul serve
  // the whole group without copying the cache G times.
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3), kv = k.size(1);
  const int64_t g = h / kv, s = k.size(2);
  const at::Tensor qg = q.reshape({b, kv, g * t, d});
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).mul_(scale).view({b, kv, g, t, s});
  scores = scores + (bias.defined() ? bias : causal_bias(q, s)).unsqueeze(1);
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(probs.view({b, kv, g * t, s}), v).view({b, h, t, d});
#endif
}

at::Tensor merge_heads(const at::Tensor& heads) {
  return heads.transpose(1, 2).flatten(2);
}

at::Tensor mlp_product(const LayerWeights& l, const at::Tensor& x) {
  const std::vector<at::Tensor> y = project_together(l.gate_up, {&l.gate, &l.up}, x);
  return at::silu(y[0]) * y[1];
}

at::Tensor mlp(const LayerWeights& l, const at::Tensor& x) {
  return linear_forward(l.down, mlp_product(l, x));
}

}  // namespace qsweep::ops
