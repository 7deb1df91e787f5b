// The decode step's fused elementwise kernels and its attention over the KV cache. Semantics
// and rounding rules are in qsweep/kernels/decode_kernels.h.
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/decode_kernels.h"

#include "kernel_util.cuh"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace qsweep::cuda {
namespace {

using namespace detail;

// The value a libtorch operation in dtype T leaves: computed in float32, rounded once.
template <typename T> __device__ __forceinline__ float rounded(float v) {
  return to_float(from_float<T>(v));
}

constexpr int kNormThreads = 256;

// Sum over the block; every thread gets the result.
__device__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  v = warp_sum(v);
  __syncthreads();  // scratch may be reused by the caller
  return v;
}

template <typename T>
__global__ void __launch_bounds__(kNormThreads)
    add_rms_norm_kernel(T* __restrict__ residual, const T* __restrict__ delta,
                        const T* __restrict__ weight, T* __restrict__ out, int hidden, float eps) {
  __shared__ float scratch[32];
  wait_then_release();
  T* row = residual + static_cast<int64_t>(blockIdx.x) * hidden;
  const T* d = delta ? delta + static_cast<int64_t>(blockIdx.x) * hidden : nullptr;
  float squares = 0.f;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    float h = to_float(row[i]);
    if (d) {
      h = rounded<T>(h + to_float(d[i]));
      row[i] = from_float<T>(h);
    }
    squares += h * h;
  }
  // mean as libtorch's reduction takes it: the sum times 1 / n.
  const float inv = rsqrtf(block_sum(squares, scratch) * (1.0f / hidden) + eps);
  T* o = out + static_cast<int64_t>(blockIdx.x) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float normed = rounded<T>(to_float(row[i]) * inv);
    o[i] = from_float<T>(to_float(weight[i]) * normed);
  }
}

// The same for rows of up to 4 x kNormThreads x 16 bytes (8192 bf16 elements; add_rms_norm picks
// kChunks): each thread keeps its pieces of the row in registers, so the row, delta and weight
// are read once, with 16-byte loads issued together, instead of element by element in two passes
// whose loads wait on each other (a batch-1 step runs this on one multiprocessor: latency is
// its cost).
template <typename T, int kChunks>
__global__ void __launch_bounds__(kNormThreads)
    add_rms_norm_vec_kernel(T* __restrict__ residual, const T* __restrict__ delta,
                            const T* __restrict__ weight, T* __restrict__ out, int hidden, float eps) {
  constexpr int kVec = 16 / sizeof(T);
  __shared__ float scratch[32];
  wait_then_release();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  const auto first = [](int c) { return (c * kNormThreads + static_cast<int>(threadIdx.x)) * kVec; };
  uint4 r[kChunks], d[kChunks], w[kChunks];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int i = first(c);
    const bool live = i < hidden;
    r[c] = live ? *reinterpret_cast<const uint4*>(residual + base + i) : make_uint4(0, 0, 0, 0);
    d[c] = live && delta ? *reinterpret_cast<const uint4*>(delta + base + i) : make_uint4(0, 0, 0, 0);
    w[c] = live ? *reinterpret_cast<const uint4*>(weight + i) : make_uint4(0, 0, 0, 0);
  }
  float squares = 0.f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    T* h = reinterpret_cast<T*>(&r[c]);
    const T* dv = reinterpret_cast<const T*>(&d[c]);
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      float v = to_float(h[j]);
      if (delta) {
        v = rounded<T>(v + to_float(dv[j]));
        h[j] = from_float<T>(v);
      }
      squares += v * v;  // elements past `hidden` are 0
    }
    if (delta && first(c) < hidden) *reinterpret_cast<uint4*>(residual + base + first(c)) = r[c];
  }
  const float inv = rsqrtf(block_sum(squares, scratch) * (1.0f / hidden) + eps);
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int i = first(c);
    if (i >= hidden) continue;
    const T* h = reinterpret_cast<const T*>(&r[c]);
    const T* wv = reinterpret_cast<const T*>(&w[c]);
    uint4 o;
    T* ov = reinterpret_cast<T*>(&o);
#pragma unroll
    for (int j = 0; j < kVec; ++j) ov[j] = from_float<T>(to_float(wv[j]) * rounded<T>(to_float(h[j]) * inv));
    *reinterpret_cast<uint4*>(out + base + i) = o;
  }
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
                                   int64_t* __restrict__ out) {
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
  if (threadIdx.x == 0) out[row] = i;
}

// Row strides, in elements, of q, k and v: views of one stacked q|k|v product have the whole
// product's row length.
struct QkvStrides {
  int64_t q, k, v;
};

// One block per (row, head): heads [0, H) are queries, [H, H + KV) keys (and their values).
template <typename T>
__global__ void rope_cache_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                  const T* __restrict__ v, QkvStrides ld, const T* __restrict__ cos,
                                  const T* __restrict__ sin, T* __restrict__ q_out,
                                  T* __restrict__ k_cache, T* __restrict__ v_cache,
                                  bool* __restrict__ key_mask, const int64_t* __restrict__ slot,
                                  int heads, int kv_heads, int dim, int64_t capacity) {
  wait_then_release();
  const int b = blockIdx.x, head = blockIdx.y, i = threadIdx.x, half = dim / 2;
  const bool is_query = head < heads;
  const int h = is_query ? head : head - heads;
  const T* x = (is_query ? q + b * ld.q : k + b * ld.k) + h * dim;
  const float c = to_float(cos[b * dim + i]), s = to_float(sin[b * dim + i]);
  // rotate_half: (-x2, x1); each product and the sum rounded as libtorch rounds them.
  const float rotated = i < half ? -to_float(x[i + half]) : to_float(x[i - half]);
  const T value = from_float<T>(rounded<T>(to_float(x[i]) * c) + rounded<T>(rotated * s));
  if (is_query) {
    q_out[(static_cast<int64_t>(b) * heads + h) * dim + i] = value;
    return;
  }
  const int64_t at = ((static_cast<int64_t>(b) * kv_heads + h) * capacity + slot[b]) * dim + i;
  k_cache[at] = value;
  v_cache[at] = v[b * ld.v + h * dim + i];
  if (h == 0 && i == 0) key_mask[b * capacity + slot[b]] = true;
}

constexpr int kAttentionThreads = 256;
constexpr int kAttentionWarps = kAttentionThreads / 32;
constexpr int kMaxGroup = 8;
// A block holds the scores of its run of slots in shared memory, so a run is at most
// kMaxRunSlots long and a longer cache is split over more blocks; runs shorter than kMinRunSlots
// would cost more to merge than they save.
constexpr int64_t kMaxRunSlots = 1024;
constexpr int64_t kMinRunSlots = 16;

// The slots [begin, end) of one row's n filled slots that split `split` of `splits` attends
// over: runs of ceil(n / splits) slots, at least kMinRunSlots, so the last runs may be empty.
struct SlotRun {
  int64_t begin, end;
};
__host__ __device__ __forceinline__ int64_t run_slots(int64_t n, int64_t splits) {
  const int64_t per = (n + splits - 1) / splits;
  return per > kMinRunSlots ? per : kMinRunSlots;
}
__device__ __forceinline__ SlotRun slot_run(int64_t n, int split, int splits) {
  const int64_t per = run_slots(n, splits);
  const int64_t begin = min(n, split * per);
  return {begin, min(n, begin + per)};
}

// A split's result for each of its G query heads, merged by attention_merge_kernel: the
// largest score, the sum of exp(score - max) and the so-weighted sum of values.
struct AttentionPartials {
  float2* stats;  // [B, kv_heads, splits, G] (max, sum)
  float* values;  // [B, kv_heads, splits, G, D]
};

// scores[g][j - run.begin] = q_g . k_j * scale for the run's slots, -inf where masked; a thread
// per slot, its key row read in 16-byte pieces.
template <typename T, int kGroup, int kDim>
__device__ void score_run(const float* qs, const T* keys, const bool* mask, SlotRun run,
                          float scale, float* scores) {
  const int64_t len = run.end - run.begin;
  for (int64_t j = run.begin + threadIdx.x; j < run.end; j += blockDim.x) {
    const T* key = keys + j * kDim;
    float dot[kGroup];
#pragma unroll
    for (int g = 0; g < kGroup; ++g) dot[g] = 0.f;
#pragma unroll
    for (int e = 0; e < kDim; e += 8) {
      float kv[8];
      if constexpr (sizeof(T) == 2) {
        unpack8<T>(__ldg(reinterpret_cast<const uint4*>(key + e)), kv);
      } else {
#pragma unroll
        for (int u = 0; u < 8; ++u) kv[u] = key[e + u];
      }
#pragma unroll
      for (int g = 0; g < kGroup; ++g)
#pragma unroll
        for (int u = 0; u < 8; ++u) dot[g] = fmaf(qs[g * kDim + e + u], kv[u], dot[g]);
    }
#pragma unroll
    for (int g = 0; g < kGroup; ++g)
      scores[g * len + (j - run.begin)] = mask[j] ? dot[g] * scale : -INFINITY;
  }
}

// Replaces each head's scores by exp(score - max) and leaves the max and the sum of those in
// row_max, row_sum [kGroup] (read after a barrier). A run whose every slot is masked keeps max
// -inf and sum 0, which the merge weighs as nothing.
template <int kGroup>
__device__ void exponentiate(float* scores, int64_t len, float* scratch, float* row_max,
                             float* row_sum) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float m[kGroup], s[kGroup];
#pragma unroll
  for (int g = 0; g < kGroup; ++g) m[g] = -INFINITY, s[g] = 0.f;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
#pragma unroll
    for (int g = 0; g < kGroup; ++g) m[g] = fmaxf(m[g], scores[g * len + j]);
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    m[g] = warp_max(m[g]);
    if (lane == 0) scratch[warp * kGroup + g] = m[g];
  }
  __syncthreads();
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    for (int w = 0; w < kAttentionWarps; ++w) m[g] = fmaxf(m[g], scratch[w * kGroup + g]);
    if (m[g] == -INFINITY) m[g] = 0.f;  // exp(-inf - 0) = 0 for every slot
  }
  __syncthreads();  // scratch holds the sums next
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const float p = expf(scores[g * len + j] - m[g]);
      scores[g * len + j] = p;
      s[g] += p;
    }
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    s[g] = warp_sum(s[g]);
    if (lane == 0) scratch[warp * kGroup + g] = s[g];
  }
  __syncthreads();
  if (threadIdx.x < kGroup) {
    const int g = threadIdx.x;
    float sum = 0.f;
    for (int w = 0; w < kAttentionWarps; ++w) sum += scratch[w * kGroup + g];
    row_max[g] = sum > 0.f ? m[g] : -INFINITY;
    row_sum[g] = sum;
  }
}

// partial[warp][g][d] = the sum over the warp's slots of the run (every kAttentionWarps-th) of
// p[g][j] * v[j][d]; lanes take a row's dims (coalesced), four slots' loads in flight at once.
template <typename T, int kGroup, int kDim>
__device__ void weigh_values(const T* values, const float* p, SlotRun run, float* partial) {
  constexpr int kPerLane = kDim / 32, kUnroll = 4;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t len = run.end - run.begin;
  const T* v_lane = values + lane * kPerLane;
  float acc[kGroup][kPerLane];
#pragma unroll
  for (int g = 0; g < kGroup; ++g)
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) acc[g][e] = 0.f;
  auto add = [&](int64_t j, const float (&v)[kPerLane]) {
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const float w = p[g * len + (j - run.begin)];
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) acc[g][e] = fmaf(w, v[e], acc[g][e]);
    }
  };
  int64_t j = run.begin + warp;
  for (; j + (kUnroll - 1) * kAttentionWarps < run.end; j += kUnroll * kAttentionWarps) {
    float v[kUnroll][kPerLane];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) v[u][e] = to_float(v_lane[(j + u * kAttentionWarps) * kDim + e]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) add(j + u * kAttentionWarps, v[u]);
  }
  for (; j < run.end; j += kAttentionWarps) {
    float v[kPerLane];
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) v[e] = to_float(v_lane[j * kDim + e]);
    add(j, v);
  }
#pragma unroll
  for (int g = 0; g < kGroup; ++g)
#pragma unroll
    for (int e = 0; e < kPerLane; ++e)
      partial[(warp * kGroup + g) * kDim + lane * kPerLane + e] = acc[g][e];
}

// One block per (kv head, split, row): the G query heads sharing the kv head, over the split's
// run of the row's filled slots. Scores go to shared memory (a thread per slot), then their
// exponentials, then the weighted sum of values; the warps' sums meet in shared memory. With one
// split the block normalises and writes the output; with more it leaves AttentionPartials.
template <typename T, int kGroup, int kDim>
__global__ void __launch_bounds__(kAttentionThreads)
    decode_attention_kernel(const T* __restrict__ q, const T* __restrict__ k_cache,
                            const T* __restrict__ v_cache, const bool* __restrict__ key_mask,
                            const int64_t* __restrict__ slot, T* __restrict__ out,
                            AttentionPartials partials, int heads, int kv_heads, int64_t capacity,
                            float scale) {
  extern __shared__ float shared[];
  __shared__ float scratch[kAttentionWarps * kGroup];
  __shared__ float row_max[kGroup], row_sum[kGroup];
  wait_then_release();
  const int kvh = blockIdx.x, split = blockIdx.y, splits = gridDim.y, b = blockIdx.z;
  const SlotRun run = slot_run(slot[b] + 1, split, splits);
  float* qs = shared;                                                 // [kGroup][kDim]
  float* scores = qs + kGroup * kDim;                                 // [kGroup][run length]
  float* partial = scores + kGroup * run_slots(capacity, splits);     // [warps][kGroup][kDim]

  const T* qb = q + (static_cast<int64_t>(b) * heads + kvh * kGroup) * kDim;
  for (int i = threadIdx.x; i < kGroup * kDim; i += blockDim.x) qs[i] = to_float(qb[i]);
  __syncthreads();
  const int64_t unit = static_cast<int64_t>(b) * kv_heads + kvh;  // (row, kv head)
  score_run<T, kGroup, kDim>(qs, k_cache + unit * capacity * kDim,
                             key_mask + static_cast<int64_t>(b) * capacity, run, scale, scores);
  __syncthreads();
  exponentiate<kGroup>(scores, run.end - run.begin, scratch, row_max, row_sum);
  __syncthreads();
  weigh_values<T, kGroup, kDim>(v_cache + unit * capacity * kDim, scores, run, partial);
  __syncthreads();

  const int64_t part = unit * splits + split;
  if (splits > 1 && threadIdx.x < kGroup)
    partials.stats[part * kGroup + threadIdx.x] = make_float2(row_max[threadIdx.x], row_sum[threadIdx.x]);
  for (int pair = threadIdx.x; pair < kGroup * kDim; pair += blockDim.x) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) sum += partial[w * kGroup * kDim + pair];
    if (splits > 1)
      partials.values[part * kGroup * kDim + pair] = sum;
    else
      out[(static_cast<int64_t>(b) * heads + kvh * kGroup) * kDim + pair] =
          from_float<T>(sum / row_sum[pair / kDim]);
  }
}

// out = the splits' weighted values, each scaled by exp(its max - the overall max), over their
// so-scaled sums: the softmax over all the row's slots. One block per (kv head, row).
template <typename T, int kGroup, int kDim>
__global__ void __launch_bounds__(kAttentionThreads)
    attention_merge_kernel(AttentionPartials partials, int splits, T* __restrict__ out, int heads,
                           int kv_heads) {
  wait_then_release();
  const int kvh = blockIdx.x, b = blockIdx.y;
  const int64_t first = (static_cast<int64_t>(b) * kv_heads + kvh) * splits;
  const float2* stats = partials.stats + first * kGroup;         // [splits][kGroup]
  const float* values = partials.values + first * kGroup * kDim;  // [splits][kGroup][kDim]
  for (int pair = threadIdx.x; pair < kGroup * kDim; pair += blockDim.x) {
    const int g = pair / kDim;
    float m = -INFINITY;
    for (int s = 0; s < splits; ++s) m = fmaxf(m, stats[s * kGroup + g].x);
    float sum = 0.f, value = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float2 st = stats[s * kGroup + g];
      const float w = expf(st.x - m);  // 0 for a run with nothing to attend to (max -inf)
      sum = fmaf(w, st.y, sum);
      value = fmaf(w, values[s * kGroup * kDim + pair], value);
    }
    out[(static_cast<int64_t>(b) * heads + kvh * kGroup) * kDim + pair] = from_float<T>(value / sum);
  }
}

template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gate, int64_t gate_ld,
                                const T* __restrict__ up, int64_t up_ld, T* __restrict__ out,
                                int64_t cols, int64_t n) {
  wait_then_release();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    const float g = to_float(gate[r * gate_ld + c]);
    const float silu = rounded<T>(g / (1.0f + expf(-g)));
    out[i] = from_float<T>(silu * to_float(up[r * up_ld + c]));
  }
}

void check_input(const at::Tensor& t, const char* what, const char* fn) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.is_contiguous(), fn, ": ", what,
              " must be a contiguous CUDA tensor");
}

// A [rows, cols] operand that may be a column slice of a wider one: rows strided, each row
// contiguous.
void check_rows(const at::Tensor& t, const char* what, const char* fn) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.dim() == 2 && rows_contiguous(t), fn, ": ", what,
              " must be a 2-D CUDA tensor with contiguous rows");
}

// Runs body with an std::integral_constant of the query heads per kv head (1 to kMaxGroup).
template <typename Body>
void with_group(int64_t group, Body&& body) {
  static_assert(kMaxGroup == 8, "the list below covers 1 to kMaxGroup");
  const bool known = with_constant<1, 2, 3, 4, 5, 6, 7, 8>(group, body);
  TORCH_CHECK(known, "decode_attention: ", group, " query heads per kv head (at most ", kMaxGroup,
              ")");
}

// Blocks per (row, kv head): at least enough that a run fits in shared memory; `requested` if
// given, else about two blocks per multiprocessor over the whole batch, as far as runs of
// kMinRunSlots fill the cache. From 33 rows on Llama's 8 kv heads (264 blocks) an H200 is
// full and the batch stays in one pass.
int64_t attention_splits(int64_t requested, int64_t rows, int64_t kv_heads, int64_t capacity) {
  const int64_t for_space = (capacity + kMaxRunSlots - 1) / kMaxRunSlots;
  if (requested > 0) return std::max(requested, for_space);
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t for_occupancy = (2 * sms + rows * kv_heads - 1) / (rows * kv_heads);
  const int64_t fillable = (capacity + kMinRunSlots - 1) / kMinRunSlots;
  return std::max(for_space, std::min(for_occupancy, fillable));
}

size_t attention_shared_bytes(int64_t group, int64_t dim, int64_t run) {
  return static_cast<size_t>(group * (dim + run + kAttentionWarps * dim)) * sizeof(float);
}

// Runs body with an std::integral_constant of the head dim (64 and 128 are Llama's; 32 is the
// made test models').
template <typename Body>
void with_head_dim(int64_t dim, Body&& body) {
  const bool known = with_constant<32, 64, 128>(dim, body);
  TORCH_CHECK(known, "decode_attention: head_dim ", dim, " (32, 64 or 128 supported)");
}

}  // namespace

// Runs `body` with scalar_t bound to float, __half or __nv_bfloat16.
#define QSWEEP_DISPATCH_FLOAT_TYPES(dtype, name, ...)                                    \
  [&] {                                                                                  \
    if ((dtype) == at::kFloat) {                                                         \
      using scalar_t = float;                                                            \
      return __VA_ARGS__();                                                              \
    }                                                                                    \
    return QSWEEP_DISPATCH_HALF_TYPES(dtype, name, __VA_ARGS__);                         \
  }()

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
    const Launch config{dim3(static_cast<unsigned>(rows)), dim3(kNormThreads), 0, stream};
    constexpr int64_t kVec = 16 / sizeof(scalar_t);
    const int64_t chunks = (hidden + kNormThreads * kVec - 1) / (kNormThreads * kVec);
    const bool aligned = hidden % kVec == 0 && aligned16(r) && aligned16(d) && aligned16(w) && aligned16(o);
    const bool vectorized = aligned && with_constant<1, 2, 3, 4>(chunks, [&](auto chunks_c) {
      launch(config, add_rms_norm_vec_kernel<scalar_t, decltype(chunks_c)::value>, r, d, w, o,
             static_cast<int>(hidden), static_cast<float>(eps));
    });
    if (!vectorized)
      launch(config, add_rms_norm_kernel<scalar_t>, r, d, w, o, static_cast<int>(hidden),
             static_cast<float>(eps));
  });
  return out;
}

void argmax_last_dim(const at::Tensor& logits, at::Tensor& out) {
  check_input(logits, "logits", "argmax_last_dim");
  check_input(out, "out", "argmax_last_dim");
  const int64_t cols = logits.size(-1), rows = cols ? logits.numel() / cols : 0;
  TORCH_CHECK(cols > 0 && cols < (1ll << 31) - kArgmaxChunk && rows <= 65535,
              "argmax_last_dim: logits must be [rows <= 65535, 0 < cols < 2^31]");
  TORCH_CHECK(out.scalar_type() == at::kLong && out.numel() == rows &&
                  out.get_device() == logits.get_device(),
              "argmax_last_dim: out must be int64 with one element per row of logits");
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
         out.data_ptr<int64_t>());
}

at::Tensor rope_and_cache_write(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& cos, const at::Tensor& sin, at::Tensor& k_cache,
                                at::Tensor& v_cache, at::Tensor& key_mask, const at::Tensor& slot) {
  for (const auto& [t, what] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}})
    check_rows(*t, what, "rope_and_cache_write");
  for (const auto& [t, what] : {std::pair{&cos, "cos"}, {&sin, "sin"}, {&k_cache, "k_cache"},
                                {&v_cache, "v_cache"}, {&key_mask, "key_mask"}, {&slot, "slot"}})
    check_input(*t, what, "rope_and_cache_write");
  const int64_t b = k_cache.size(0), kv_heads = k_cache.size(1), capacity = k_cache.size(2),
                dim = k_cache.size(3), heads = q.size(1) / dim;
  TORCH_CHECK(dim % 2 == 0 && dim <= 1024 && slot.numel() == b && slot.scalar_type() == at::kLong,
              "rope_and_cache_write: head_dim must be even and slot int64 [batch]");
  TORCH_CHECK(q.size(0) == b && q.size(1) == heads * dim && k.sizes() == v.sizes() &&
                  k.size(0) == b && k.size(1) == kv_heads * dim,
              "rope_and_cache_write: q must be [batch, heads * head_dim] and k, v [batch, "
              "kv_heads * head_dim]");
  at::Tensor q_out = at::empty({b, heads, dim}, q.options());
  QSWEEP_DISPATCH_FLOAT_TYPES(q.scalar_type(), "rope_and_cache_write", [&] {
    const dim3 grid(static_cast<unsigned>(b), static_cast<unsigned>(heads + kv_heads));
    launch({grid, dim3(static_cast<unsigned>(dim)), 0, at::cuda::getCurrentCUDAStream()},
        rope_cache_kernel<scalar_t>, reinterpret_cast<const scalar_t*>(q.data_ptr()),
        reinterpret_cast<const scalar_t*>(k.data_ptr()),
        reinterpret_cast<const scalar_t*>(v.data_ptr()), QkvStrides{q.stride(0), k.stride(0), v.stride(0)},
        reinterpret_cast<const scalar_t*>(cos.data_ptr()),
        reinterpret_cast<const scalar_t*>(sin.data_ptr()),
        reinterpret_cast<scalar_t*>(q_out.data_ptr()),
        reinterpret_cast<scalar_t*>(k_cache.data_ptr()),
        reinterpret_cast<scalar_t*>(v_cache.data_ptr()), key_mask.data_ptr<bool>(),
        slot.data_ptr<int64_t>(), static_cast<int>(heads), static_cast<int>(kv_heads),
        static_cast<int>(dim), capacity);
  });
  return q_out;
}

bool decode_attention_supported(int64_t heads, int64_t kv_heads, int64_t head_dim) {
  if (kv_heads <= 0 || heads % kv_heads != 0 || heads / kv_heads > kMaxGroup) return false;
  if (head_dim != 32 && head_dim != 64 && head_dim != 128) return false;
  // The longest run's shared memory, whatever the cache length (69.6 KB at 8 heads of dim 128).
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  return attention_shared_bytes(heads / kv_heads, head_dim, kMaxRunSlots) <=
         prop->sharedMemPerBlockOptin - 2048;
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache,
                            const at::Tensor& v_cache, const at::Tensor& key_mask,
                            const at::Tensor& slot, double scale, int64_t splits) {
  for (const auto& [t, what] : {std::pair{&q, "q"}, {&k_cache, "k_cache"}, {&v_cache, "v_cache"},
                                {&key_mask, "key_mask"}, {&slot, "slot"}})
    check_input(*t, what, "decode_attention");
  const int64_t b = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = k_cache.size(1),
                capacity = k_cache.size(2);
  TORCH_CHECK(decode_attention_supported(heads, kv_heads, dim),
              "decode_attention: unsupported shape (", heads, " heads, ", kv_heads, " kv heads, dim ",
              dim, ")");
  TORCH_CHECK(splits >= 0, "decode_attention: splits must be 0 (chosen here) or positive, got ", splits);
  splits = attention_splits(splits, b, kv_heads, capacity);
  const int64_t group = heads / kv_heads;
  at::Tensor out = at::empty({b, heads * dim}, q.options());
  at::Tensor merged;  // the splits' partials, [B, kv_heads, splits, G] stats then values
  AttentionPartials partials{};
  if (splits > 1) {
    const int64_t parts = b * kv_heads * splits * group;
    merged = at::empty({parts * (2 + dim)}, q.options().dtype(at::kFloat));
    partials.stats = reinterpret_cast<float2*>(merged.data_ptr<float>());
    partials.values = merged.data_ptr<float>() + 2 * parts;
  }
  const size_t shared = attention_shared_bytes(group, dim, run_slots(capacity, splits));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_FLOAT_TYPES(q.scalar_type(), "decode_attention", [&] {
    with_group(group, [&](auto group_c) {
      with_head_dim(dim, [&](auto dim_c) {
        constexpr int kGroup = decltype(group_c)::value, kDim = decltype(dim_c)::value;
        auto* const o = reinterpret_cast<scalar_t*>(out.data_ptr());
        auto kernel = decode_attention_kernel<scalar_t, kGroup, kDim>;
        QSWEEP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(shared)));
        const dim3 grid(static_cast<unsigned>(kv_heads), static_cast<unsigned>(splits),
                        static_cast<unsigned>(b));
        launch({grid, dim3(kAttentionThreads), shared, stream}, kernel,
               reinterpret_cast<const scalar_t*>(q.data_ptr()),
               reinterpret_cast<const scalar_t*>(k_cache.data_ptr()),
               reinterpret_cast<const scalar_t*>(v_cache.data_ptr()), key_mask.data_ptr<bool>(),
               slot.data_ptr<int64_t>(), o, partials, static_cast<int>(heads),
               static_cast<int>(kv_heads), capacity, static_cast<float>(scale));
        if (splits == 1) return;
        launch({dim3(static_cast<unsigned>(kv_heads), static_cast<unsigned>(b)),
                dim3(kAttentionThreads), 0, stream},
               attention_merge_kernel<scalar_t, kGroup, kDim>, partials,
               static_cast<int>(splits), o, static_cast<int>(heads), static_cast<int>(kv_heads));
      });
    });
  });
  return out;
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
