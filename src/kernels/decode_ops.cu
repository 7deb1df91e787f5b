// The decode step's fused elementwise kernels (its attention over the KV cache is in
// decode_attention.cu). Semantics and rounding rules are in qsweep/kernels/decode_kernels.h.
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/decode_kernels.h"

#include "kernel_util.cuh"
#include "rms_norm_row.cuh"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace qsweep::cuda {
namespace {

using namespace detail;

// One block per row of residual.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kNormThreads)
    add_rms_norm_kernel(T* __restrict__ residual, const T* __restrict__ delta,
                        const T* __restrict__ weight, T* __restrict__ out, int hidden, float eps) {
  __shared__ float scratch[32];
  wait_then_release();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  add_norm_row<T, kChunks>(residual + base, delta ? delta + base : nullptr,
                           delta ? residual + base : nullptr, weight, out + base, hidden, eps,
                           scratch);
}

// The start of a decode step, one block per row: x = embed[token], h its RMSNorm, and the RoPE
// cos and sin of the row's position as ops::rope_tables computes them (a float32 angle, its
// cosine and sine rounded once): what about eight libtorch kernels did, each a full stop in the
// graph.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kNormThreads)
    decode_inputs_kernel(const T* __restrict__ embed, const int64_t* __restrict__ tokens,
                         const int64_t* __restrict__ positions, const float* __restrict__ inv_freq,
                         const T* __restrict__ weight, T* __restrict__ x, T* __restrict__ h,
                         T* __restrict__ cos, T* __restrict__ sin, int hidden, int dim, float eps) {
  __shared__ float scratch[32];
  wait_then_release();
  const int64_t b = blockIdx.x;
  const float position = static_cast<float>(positions[b]);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float angle = position * inv_freq[i % (dim / 2)];
    cos[b * dim + i] = from_float<T>(cosf(angle));
    sin[b * dim + i] = from_float<T>(sinf(angle));
  }
  add_norm_row<T, kChunks>(embed + tokens[b] * hidden, nullptr, x + b * hidden, weight,
                           h + b * hidden, hidden, eps, scratch);
}

// Runs launch_norm(std::integral_constant<int, kChunks>) with the register variant of
// add_norm_row that holds a row of `hidden` T where the row and its pointers allow it, else the
// two-pass one (0).
template <typename T, typename F>
void with_norm_chunks(int64_t hidden, bool aligned, F&& launch_norm) {
  if (!(aligned && with_constant<1, 2, 3, 4>(norm_chunks<T>(hidden), launch_norm)))
    launch_norm(std::integral_constant<int, 0>{});
}

// Greedy choice over the last dimension, as at::argmax picks: the first index of the largest
// value, a NaN counting as larger than any number. Many blocks per row each reduce a chunk,
// then one warp per row reduces the chunks' winners: a vocabulary of 128k read by one block, as
// at::argmax does for a single row, takes some 40 us, longer than the lm_head product before it.
constexpr int kArgmaxThreads = 256;
constexpr int kArgmaxChunk = 2048;

__device__ __forceinline__ bool beats(float v, int i, float best, int best_i) {
  if (isnan(v)) return !isnan(best) || i < best_i;
  if (isnan(best)) return false;
  return v > best || (v == best && i < best_i);
}

__device__ __forceinline__ void warp_best(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (beats(ov, oi, v, i)) v = ov, i = oi;
  }
}

template <typename T>
__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_chunk_kernel(const T* __restrict__ x, int64_t cols, float* __restrict__ best_value,
                        int* __restrict__ best_index) {
  __shared__ float values[kArgmaxThreads / 32];
  __shared__ int indices[kArgmaxThreads / 32];
  wait_then_release();
  const int64_t row = blockIdx.y;
  const int begin = blockIdx.x * kArgmaxChunk;
  const int end = static_cast<int>(cols < begin + kArgmaxChunk ? cols : begin + kArgmaxChunk);
  float v = -INFINITY;
  int i = INT_MAX;
  for (int k = begin + threadIdx.x; k < end; k += kArgmaxThreads) {
    const float e = to_float(x[row * cols + k]);
    if (beats(e, k, v, i)) v = e, i = k;
  }
  warp_best(v, i);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) values[warp] = v, indices[warp] = i;
  __syncthreads();
  if (warp != 0) return;
  v = lane < kArgmaxThreads / 32 ? values[lane] : -INFINITY;
  i = lane < kArgmaxThreads / 32 ? indices[lane] : INT_MAX;
  warp_best(v, i);
  if (lane == 0) {
    best_value[row * gridDim.x + blockIdx.x] = v;
    best_index[row * gridDim.x + blockIdx.x] = i;
  }
}

__global__ void argmax_rows_kernel(const float* __restrict__ best_value,
                                   const int* __restrict__ best_index, int chunks,
                                   int64_t* __restrict__ out, int64_t* __restrict__ positions,
                                   int64_t* __restrict__ slot) {
  wait_then_release();
  const int64_t row = blockIdx.x;
  float v = -INFINITY;
  int i = INT_MAX;
  for (int c = threadIdx.x; c < chunks; c += 32) {
    const float cv = best_value[row * chunks + c];
    const int ci = best_index[row * chunks + c];
    if (beats(cv, ci, v, i)) v = cv, i = ci;
  }
  warp_best(v, i);
  if (threadIdx.x != 0) return;
  out[row] = i;
  if (positions) ++positions[row];
  if (slot) ++slot[row];
}

// Row strides, in elements, of q, k and v: views of one stacked q|k|v product have the whole
// product's row length.
struct QkvStrides {
  int64_t q, k, v;
};

// Where rope_cache_kernel writes: `tokens` consecutive rows of q, k, v per cache row, token t
// of cache row b at slot[b] (one token a row: decode) or at start + t (prefill), key_mask set
// where given.
struct CacheSlots {
  const int64_t* slot;
  int64_t start;
  int tokens;
  bool* key_mask;
};

// One block per (token row, head): heads [0, H) are queries, [H, H + KV) keys (and their
// values). Queries go out as [B, H, tokens, D].
template <typename T>
__global__ void rope_cache_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                  const T* __restrict__ v, QkvStrides ld, const T* __restrict__ cos,
                                  const T* __restrict__ sin, T* __restrict__ q_out,
                                  T* __restrict__ k_cache, T* __restrict__ v_cache, CacheSlots slots,
                                  int heads, int kv_heads, int dim, int64_t capacity) {
  wait_then_release();
  const int64_t r = blockIdx.x;
  const int head = blockIdx.y, i = threadIdx.x, half = dim / 2;
  const int64_t b = r / slots.tokens, t = r % slots.tokens;
  const bool is_query = head < heads;
  const int h = is_query ? head : head - heads;
  const T* x = (is_query ? q + r * ld.q : k + r * ld.k) + h * dim;
  const float c = to_float(cos[r * dim + i]), s = to_float(sin[r * dim + i]);
  // rotate_half: (-x2, x1); each product and the sum rounded as libtorch rounds them (__fmul_rn:
  // in float32 too, where a fused multiply-add would round once less).
  const float rotated = i < half ? -to_float(x[i + half]) : to_float(x[i - half]);
  const T value =
      from_float<T>(rounded<T>(__fmul_rn(to_float(x[i]), c)) + rounded<T>(__fmul_rn(rotated, s)));
  if (is_query) {
    q_out[((b * heads + h) * slots.tokens + t) * dim + i] = value;
    return;
  }
  const int64_t slot = slots.slot ? slots.slot[b] : slots.start + t;
  const int64_t into = ((b * kv_heads + h) * capacity + slot) * dim + i;
  k_cache[into] = value;
  v_cache[into] = v[r * ld.v + h * dim + i];
  if (slots.key_mask && h == 0 && i == 0) slots.key_mask[b * capacity + slot] = true;
}

template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gate, int64_t gate_ld,
                                const T* __restrict__ up, int64_t up_ld, T* __restrict__ out,
                                int64_t cols, int64_t n) {
  wait_then_release();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    out[i] = silu_times<T>(to_float(gate[r * gate_ld + c]), to_float(up[r * up_ld + c]));
  }
}

}  // namespace


at::Tensor add_rms_norm(at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight,
                        double eps) {
  check_input(residual, "residual", "add_rms_norm");
  check_input(weight, "weight", "add_rms_norm");
  if (delta.defined()) check_input(delta, "delta", "add_rms_norm");
  const int64_t hidden = residual.size(-1), rows = residual.numel() / hidden;
  at::Tensor out = at::empty_like(residual);
  if (rows == 0) return out;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_FLOAT_TYPES(residual.scalar_type(), "add_rms_norm", [&] {
    auto* r = reinterpret_cast<scalar_t*>(residual.data_ptr());
    const auto* d = delta.defined() ? reinterpret_cast<const scalar_t*>(delta.data_ptr()) : nullptr;
    const auto* w = reinterpret_cast<const scalar_t*>(weight.data_ptr());
    auto* o = reinterpret_cast<scalar_t*>(out.data_ptr());
    const bool aligned = aligned16(r) && aligned16(d) && aligned16(w) && aligned16(o);
    with_norm_chunks<scalar_t>(hidden, aligned, [&](auto chunks_c) {
      launch({dim3(static_cast<unsigned>(rows)), dim3(kNormThreads), 0, stream},
             add_rms_norm_kernel<scalar_t, decltype(chunks_c)::value>, r, d, w, o,
             static_cast<int>(hidden), static_cast<float>(eps));
    });
  });
  return out;
}

DecodeInputs decode_inputs(const at::Tensor& embed, const at::Tensor& tokens,
                           const at::Tensor& positions, const at::Tensor& inv_freq,
                           const at::Tensor& norm_weight, double eps) {
  for (const auto& [t, what] : {std::pair{&embed, "embed"}, {&tokens, "tokens"},
                                {&positions, "positions"}, {&inv_freq, "inv_freq"},
                                {&norm_weight, "norm_weight"}})
    check_input(*t, what, "decode_inputs");
  const int64_t b = tokens.numel(), hidden = embed.size(-1), dim = 2 * inv_freq.numel();
  TORCH_CHECK(embed.dim() == 2 && norm_weight.numel() == hidden &&
                  norm_weight.scalar_type() == embed.scalar_type() && hidden < (1ll << 31),
              "decode_inputs: embed must be [vocab, hidden] and norm_weight [hidden] in its dtype");
  TORCH_CHECK(tokens.scalar_type() == at::kLong && positions.scalar_type() == at::kLong &&
                  positions.numel() == b && inv_freq.scalar_type() == at::kFloat && b <= 65535,
              "decode_inputs: tokens and positions must be int64 with one element per row (at "
              "most 65535), inv_freq float32 [head_dim / 2]");
  const auto options = embed.options();
  DecodeInputs in{at::empty({b, hidden}, options), at::empty({b, hidden}, options),
                  at::empty({b, dim}, options), at::empty({b, dim}, options)};
  if (b == 0) return in;
  QSWEEP_DISPATCH_FLOAT_TYPES(embed.scalar_type(), "decode_inputs", [&] {
    const auto* e = reinterpret_cast<const scalar_t*>(embed.data_ptr());
    const auto* w = reinterpret_cast<const scalar_t*>(norm_weight.data_ptr());
    auto* x = reinterpret_cast<scalar_t*>(in.x.data_ptr());
    auto* h = reinterpret_cast<scalar_t*>(in.h.data_ptr());
    const bool aligned = aligned16(e) && aligned16(w) && aligned16(x) && aligned16(h);
    with_norm_chunks<scalar_t>(hidden, aligned, [&](auto chunks_c) {
      launch({dim3(static_cast<unsigned>(b)), dim3(kNormThreads), 0, at::cuda::getCurrentCUDAStream()},
             decode_inputs_kernel<scalar_t, decltype(chunks_c)::value>, e,
             tokens.data_ptr<int64_t>(), positions.data_ptr<int64_t>(), inv_freq.data_ptr<float>(),
             w, x, h, reinterpret_cast<scalar_t*>(in.cos.data_ptr()),
             reinterpret_cast<scalar_t*>(in.sin.data_ptr()), static_cast<int>(hidden),
             static_cast<int>(dim), static_cast<float>(eps));
    });
  });
  return in;
}

void argmax_last_dim(const at::Tensor& logits, at::Tensor& out, const at::Tensor& positions,
                     const at::Tensor& slot) {
  check_input(logits, "logits", "argmax_last_dim");
  check_input(out, "out", "argmax_last_dim");
  const int64_t cols = logits.size(-1), rows = cols ? logits.numel() / cols : 0;
  TORCH_CHECK(cols > 0 && cols < (1ll << 31) - kArgmaxChunk && rows <= 65535,
              "argmax_last_dim: logits must be [rows <= 65535, 0 < cols < 2^31]");
  TORCH_CHECK(out.scalar_type() == at::kLong && out.numel() == rows &&
                  out.get_device() == logits.get_device(),
              "argmax_last_dim: out must be int64 with one element per row of logits");
  for (const auto& [t, what] : {std::pair{&positions, "positions"}, {&slot, "slot"}}) {
    if (!t->defined()) continue;
    check_input(*t, what, "argmax_last_dim");
    TORCH_CHECK(t->scalar_type() == at::kLong && t->numel() == rows &&
                    t->get_device() == logits.get_device(),
                "argmax_last_dim: ", what, " must be int64 with one element per row of logits");
  }
  if (rows == 0) return;
  const int64_t chunks = (cols + kArgmaxChunk - 1) / kArgmaxChunk;
  const at::Tensor values = at::empty({rows, chunks}, logits.options().dtype(at::kFloat));
  const at::Tensor indices = at::empty({rows, chunks}, logits.options().dtype(at::kInt));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_FLOAT_TYPES(logits.scalar_type(), "argmax_last_dim", [&] {
    launch({dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(rows)), dim3(kArgmaxThreads), 0,
            stream},
           argmax_chunk_kernel<scalar_t>, reinterpret_cast<const scalar_t*>(logits.data_ptr()), cols,
           values.data_ptr<float>(), indices.data_ptr<int>());
  });
  launch({dim3(static_cast<unsigned>(rows)), dim3(32), 0, stream}, argmax_rows_kernel,
         values.data_ptr<float>(), indices.data_ptr<int>(), static_cast<int>(chunks),
         out.data_ptr<int64_t>(), positions.defined() ? positions.data_ptr<int64_t>() : nullptr,
         slot.defined() ? slot.data_ptr<int64_t>() : nullptr);
}

namespace {

// RoPE on the token rows of q, k (and v alongside) into q_out [B, heads, T, D] and the cache
// where `slots` says: rope_and_cache_write and rope_prefill_and_cache_write.
at::Tensor rope_into_cache(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& cos, const at::Tensor& sin, at::Tensor& k_cache,
                           at::Tensor& v_cache, CacheSlots slots, const char* fn) {
  for (const auto& [t, what] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) check_rows(*t, what, fn);
  for (const auto& [t, what] : {std::pair{&cos, "cos"}, {&sin, "sin"}, {&k_cache, "k_cache"},
                                {&v_cache, "v_cache"}})
    check_input(*t, what, fn);
  const int64_t b = k_cache.size(0), kv_heads = k_cache.size(1), capacity = k_cache.size(2),
                dim = k_cache.size(3), heads = q.size(1) / dim, rows = b * slots.tokens;
  TORCH_CHECK(dim % 2 == 0 && dim <= 1024, fn, ": head_dim must be even, at most 1,024");
  TORCH_CHECK(q.size(0) == rows && q.size(1) == heads * dim && k.sizes() == v.sizes() &&
                  k.size(0) == rows && k.size(1) == kv_heads * dim && cos.numel() == rows * dim &&
                  sin.numel() == rows * dim,
              fn, ": q must be [batch * tokens, heads * head_dim], k, v [batch * tokens, "
              "kv_heads * head_dim] and cos, sin [batch * tokens, head_dim]");
  at::Tensor q_out = at::empty({b, heads, slots.tokens, dim}, q.options());
  if (rows == 0) return q_out;
  QSWEEP_DISPATCH_FLOAT_TYPES(q.scalar_type(), fn, [&] {
    const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(heads + kv_heads));
    launch({grid, dim3(static_cast<unsigned>(dim)), 0, at::cuda::getCurrentCUDAStream()},
        rope_cache_kernel<scalar_t>, reinterpret_cast<const scalar_t*>(q.data_ptr()),
        reinterpret_cast<const scalar_t*>(k.data_ptr()),
        reinterpret_cast<const scalar_t*>(v.data_ptr()), QkvStrides{q.stride(0), k.stride(0), v.stride(0)},
        reinterpret_cast<const scalar_t*>(cos.data_ptr()),
        reinterpret_cast<const scalar_t*>(sin.data_ptr()),
        reinterpret_cast<scalar_t*>(q_out.data_ptr()),
        reinterpret_cast<scalar_t*>(k_cache.data_ptr()),
        reinterpret_cast<scalar_t*>(v_cache.data_ptr()), slots, static_cast<int>(heads),
        static_cast<int>(kv_heads), static_cast<int>(dim), capacity);
  });
  return q_out;
}

}  // namespace

at::Tensor rope_and_cache_write(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& cos, const at::Tensor& sin, at::Tensor& k_cache,
                                at::Tensor& v_cache, at::Tensor& key_mask, const at::Tensor& slot) {
  const char* fn = "rope_and_cache_write";
  check_input(key_mask, "key_mask", fn);
  check_input(slot, "slot", fn);
  TORCH_CHECK(slot.numel() == k_cache.size(0) && slot.scalar_type() == at::kLong, fn,
              ": slot must be int64 [batch]");
  const at::Tensor q_out = rope_into_cache(q, k, v, cos, sin, k_cache, v_cache,
                                           {slot.data_ptr<int64_t>(), 0, 1, key_mask.data_ptr<bool>()}, fn);
  return q_out.view({q_out.size(0), q_out.size(1), q_out.size(3)});
}

at::Tensor rope_prefill_and_cache_write(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v, const at::Tensor& cos,
                                        const at::Tensor& sin, at::Tensor& k_cache,
                                        at::Tensor& v_cache, int64_t start) {
  const char* fn = "rope_prefill_and_cache_write";
  const int64_t b = k_cache.dim() == 4 ? k_cache.size(0) : 0;
  TORCH_CHECK(b > 0 && q.dim() == 2 && q.size(0) % b == 0, fn,
              ": q must hold a whole number of tokens for each of the cache's ", b, " rows");
  const int64_t tokens = q.size(0) / b;
  TORCH_CHECK(start >= 0 && start + tokens <= k_cache.size(2) && tokens < (1ll << 31), fn,
              ": slots ", start, " + ", tokens, " past the cache's ", k_cache.size(2));
  return rope_into_cache(q, k, v, cos, sin, k_cache, v_cache,
                         {nullptr, start, static_cast<int>(tokens), nullptr}, fn);
}

at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up) {
  check_rows(gate, "gate", "silu_mul");
  check_rows(up, "up", "silu_mul");
  TORCH_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
              "silu_mul: gate and up must have one shape and dtype");
  at::Tensor out = at::empty(gate.sizes(), gate.options());
  const int64_t n = gate.numel();
  if (n == 0) return out;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 4096));
  QSWEEP_DISPATCH_FLOAT_TYPES(gate.scalar_type(), "silu_mul", [&] {
    launch({dim3(blocks), dim3(threads), 0, at::cuda::getCurrentCUDAStream()},
           silu_mul_kernel<scalar_t>, reinterpret_cast<const scalar_t*>(gate.data_ptr()),
           gate.stride(0), reinterpret_cast<const scalar_t*>(up.data_ptr()), up.stride(0),
           reinterpret_cast<scalar_t*>(out.data_ptr()), gate.size(1), n);
  });
  return out;
}

}  // namespace qsweep::cuda
