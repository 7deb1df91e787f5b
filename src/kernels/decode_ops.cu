// The decode step's fused elementwise kernels and its attention over the KV cache. Semantics
// and rounding rules are in qsweep/kernels/decode_kernels.h.
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/decode_kernels.h"
#include "qsweep/kernels/gemv_output.h"

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

// One row's sum = in + delta (rounded to T, as `x = x + delta`; delta may be null), written to
// sum_row where given, then transformers' RMSNorm of the sum into out: the whole block on one
// row. kChunks 0: element by element in two passes, any row. kChunks 1 to 4: rows of up to
// kChunks x kNormThreads x 16 bytes (8192 bf16 elements) whose pieces each thread keeps in
// registers, so the row, delta and weight are read once, with 16-byte loads issued together,
// instead of in two passes whose loads wait on each other (a batch-1 step runs this on one
// multiprocessor: latency is its cost). The mean is taken as libtorch's reduction takes it:
// the sum times 1 / n.
template <typename T, int kChunks>
__device__ void add_norm_row(const T* in, const T* delta, T* sum_row, const T* weight, T* out,
                             int hidden, float eps, float* scratch) {
  if constexpr (kChunks == 0) {
    float squares = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
      float v = to_float(in[i]);
      if (delta) v = rounded<T>(v + to_float(delta[i]));
      if (sum_row) sum_row[i] = from_float<T>(v);
      squares += v * v;
    }
    const float inv = rsqrtf(block_sum(squares, scratch) * (1.0f / hidden) + eps);
    const T* sum = sum_row ? sum_row : in;  // this thread's own elements, written above
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
      out[i] = from_float<T>(to_float(weight[i]) * rounded<T>(to_float(sum[i]) * inv));
  } else {
    constexpr int kVec = 16 / sizeof(T);
    const auto first = [](int c) { return (c * kNormThreads + static_cast<int>(threadIdx.x)) * kVec; };
    uint4 r[kChunks], d[kChunks], w[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int i = first(c);
      const bool live = i < hidden;
      r[c] = live ? *reinterpret_cast<const uint4*>(in + i) : make_uint4(0, 0, 0, 0);
      d[c] = live && delta ? *reinterpret_cast<const uint4*>(delta + i) : make_uint4(0, 0, 0, 0);
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
      if (sum_row && first(c) < hidden) *reinterpret_cast<uint4*>(sum_row + first(c)) = r[c];
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
      *reinterpret_cast<uint4*>(out + i) = o;
    }
  }
}

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
// cosine and sine rounded once): what ten libtorch kernels did, each a full stop in the graph.
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
  constexpr int64_t kVec = 16 / sizeof(T);
  const int64_t chunks = (hidden + kNormThreads * kVec - 1) / (kNormThreads * kVec);
  if (!(aligned && hidden % kVec == 0 && with_constant<1, 2, 3, 4>(chunks, launch_norm)))
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

// A split's result for each of its G query heads, merged by merge_splits: the
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
      for (int g = 0; g < kGroup; ++g) {
        // Two 16-byte reads of the query (one address in every lane: a broadcast) where eight
        // 4-byte ones were: a fourth of the shared-memory instructions per key element.
        const float4 qa = *reinterpret_cast<const float4*>(qs + g * kDim + e);
        const float4 qb = *reinterpret_cast<const float4*>(qs + g * kDim + e + 4);
        const float qv[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
#pragma unroll
        for (int u = 0; u < 8; ++u) dot[g] = fmaf(qv[u], kv[u], dot[g]);
      }
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

// The kVec elements of one 16-byte piece of a T row as floats.
template <typename T>
__device__ __forceinline__ void unpack_piece(const uint4& raw, float (&out)[16 / sizeof(T)]) {
  if constexpr (sizeof(T) == 2) {
    unpack8<T>(raw, out);
  } else {
    out[0] = __uint_as_float(raw.x), out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z), out[3] = __uint_as_float(raw.w);
  }
}

// partial[warp][g][d] = the sum over the warp's slots of the run of p[g][j] * v[j][d]. A value
// row is read in 16-byte pieces by a group of kDim / kVec lanes, so one load of the warp covers
// 32 / that many rows (512 contiguous bytes) and each lane has kUnroll loads in flight; the lane
// groups' sums then meet by shuffles. A warp takes every kAttentionWarps-th step of rows.
template <typename T, int kGroup, int kDim>
__device__ void weigh_values(const T* values, const float* p, SlotRun run, float* partial) {
  constexpr int kVec = 16 / sizeof(T), kLanesPerRow = kDim / kVec, kRowsPerStep = 32 / kLanesPerRow;
  constexpr int kStride = kAttentionWarps * kRowsPerStep, kUnroll = 4;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, piece = lane % kLanesPerRow;
  const int64_t len = run.end - run.begin;
  const uint4* v_lane = reinterpret_cast<const uint4*>(values) + piece;
  float acc[kGroup][kVec];
#pragma unroll
  for (int g = 0; g < kGroup; ++g)
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[g][e] = 0.f;
  auto add = [&](int64_t j, const uint4& raw) {
    float v[kVec];
    unpack_piece<T>(raw, v);
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const float w = p[g * len + (j - run.begin)];
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[g][e] = fmaf(w, v[e], acc[g][e]);
    }
  };
  int64_t j = run.begin + warp * kRowsPerStep + lane / kLanesPerRow;
  for (; j + (kUnroll - 1) * kStride < run.end; j += kUnroll * kStride) {
    uint4 raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) raw[u] = __ldg(v_lane + (j + u * kStride) * kLanesPerRow);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) add(j + u * kStride, raw[u]);
  }
  for (; j < run.end; j += kStride) add(j, __ldg(v_lane + j * kLanesPerRow));
#pragma unroll
  for (int o = kLanesPerRow; o < 32; o <<= 1)
#pragma unroll
    for (int g = 0; g < kGroup; ++g)
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
  if (lane >= kLanesPerRow) return;
#pragma unroll
  for (int g = 0; g < kGroup; ++g)
#pragma unroll
    for (int e = 0; e < kVec; ++e) partial[(warp * kGroup + g) * kDim + piece * kVec + e] = acc[g][e];
}

// Whether this block is the last of `expected` blocks to arrive at `count`, which then goes back
// to 0 for the next call. What every block wrote before arriving is visible to the last one.
__device__ bool last_to_arrive(int* count, int expected) {
  __shared__ bool last;
  __threadfence();  // this thread's writes go out before its block is counted in
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(count, 1) == expected - 1;
    if (last) atomicExch(count, 0);
  }
  __syncthreads();
  if (last) __threadfence();
  return last;
}

// out = the splits' weighted values, each scaled by exp(its max - the overall max), over their
// so-scaled sums: the softmax over all of a (row, kv head)'s slots. Run by the block that wrote
// the last split; the others' partials are read past L1, which may not have seen them.
template <typename T, int kGroup, int kDim>
__device__ void merge_splits(const AttentionPartials& partials, int64_t unit, int splits, T* out) {
  const float2* stats = partials.stats + unit * splits * kGroup;         // [splits][kGroup]
  const float* values = partials.values + unit * splits * kGroup * kDim;  // [splits][kGroup][kDim]
  for (int pair = threadIdx.x; pair < kGroup * kDim; pair += blockDim.x) {
    const int g = pair / kDim;
    float m = -INFINITY;
    for (int s = 0; s < splits; ++s) m = fmaxf(m, __ldcg(stats + s * kGroup + g).x);
    float sum = 0.f, value = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float2 st = __ldcg(stats + s * kGroup + g);
      const float w = expf(st.x - m);  // 0 for a run with nothing to attend to (max -inf)
      sum = fmaf(w, st.y, sum);
      value = fmaf(w, __ldcg(values + s * kGroup * kDim + pair), value);
    }
    out[pair] = from_float<T>(value / sum);
  }
}

// One block per (kv head, split, row): the G query heads sharing the kv head, over the split's
// run of the row's filled slots. Scores go to shared memory (a thread per slot), then their
// exponentials, then the weighted sum of values; the warps' sums meet in shared memory. With one
// split the block normalises and writes the output; with more it leaves AttentionPartials, and
// the last of a (row, kv head)'s blocks to finish merges them (arrivals: one count per pair).
template <typename T, int kGroup, int kDim>
__global__ void __launch_bounds__(kAttentionThreads)
    decode_attention_kernel(const T* __restrict__ q, const T* __restrict__ k_cache,
                            const T* __restrict__ v_cache, const bool* __restrict__ key_mask,
                            const int64_t* __restrict__ slot, T* __restrict__ out,
                            AttentionPartials partials, int* __restrict__ arrivals, int heads,
                            int kv_heads, int64_t capacity, float scale) {
  extern __shared__ __align__(16) float shared[];
  __shared__ float scratch[kAttentionWarps * kGroup];
  __shared__ float row_max[kGroup], row_sum[kGroup];
  const int kvh = blockIdx.x, split = blockIdx.y, splits = gridDim.y, b = blockIdx.z;
  const int64_t unit = static_cast<int64_t>(b) * kv_heads + kvh;  // (row, kv head)
  const T* keys = k_cache + unit * capacity * kDim;
  const T* vals = v_cache + unit * capacity * kDim;
  if (threadIdx.x == 0) {
    // The run's keys and values come from DRAM, a round trip per dependent load; while the
    // kernel before (RoPE and the cache write) runs, L2 can fetch them. The slot is read again
    // after the wait: this read only aims the hint (the step that advanced it finished long
    // before the kernel before this one began).
    const SlotRun early = slot_run(slot[b] + 1, split, splits);
    const int64_t bytes = (early.end - early.begin) * kDim * static_cast<int64_t>(sizeof(T));
    prefetch_l2_within(keys + early.begin * kDim, bytes);
    prefetch_l2_within(vals + early.begin * kDim, bytes);
  }
  wait_then_release();
  const SlotRun run = slot_run(slot[b] + 1, split, splits);
  float* qs = shared;                                                 // [kGroup][kDim]
  float* scores = qs + kGroup * kDim;                                 // [kGroup][run length]
  float* partial = scores + kGroup * run_slots(capacity, splits);     // [warps][kGroup][kDim]

  const T* qb = q + (static_cast<int64_t>(b) * heads + kvh * kGroup) * kDim;
  for (int i = threadIdx.x; i < kGroup * kDim; i += blockDim.x) qs[i] = to_float(qb[i]);
  __syncthreads();
  score_run<T, kGroup, kDim>(qs, keys, key_mask + static_cast<int64_t>(b) * capacity, run, scale,
                             scores);
  __syncthreads();
  exponentiate<kGroup>(scores, run.end - run.begin, scratch, row_max, row_sum);
  __syncthreads();
  weigh_values<T, kGroup, kDim>(vals, scores, run, partial);
  __syncthreads();

  T* const o = out + (static_cast<int64_t>(b) * heads + kvh * kGroup) * kDim;
  auto warps_sum = [&](int pair) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) sum += partial[w * kGroup * kDim + pair];
    return sum;
  };
  if (splits == 1) {
    for (int pair = threadIdx.x; pair < kGroup * kDim; pair += blockDim.x)
      o[pair] = from_float<T>(warps_sum(pair) / row_sum[pair / kDim]);
    return;
  }
  const int64_t part = unit * splits + split;
  if (threadIdx.x < kGroup)
    partials.stats[part * kGroup + threadIdx.x] = make_float2(row_max[threadIdx.x], row_sum[threadIdx.x]);
  for (int pair = threadIdx.x; pair < kGroup * kDim; pair += blockDim.x)
    partials.values[part * kGroup * kDim + pair] = warps_sum(pair);
  if (last_to_arrive(arrivals + unit, splits)) merge_splits<T, kGroup, kDim>(partials, unit, splits, o);
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
                            const at::Tensor& slot, double scale, int64_t splits,
                            const at::Tensor& arrivals) {
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
  at::Tensor counts = arrivals;
  if (splits > 1) {
    const int64_t parts = b * kv_heads * splits * group;
    merged = at::empty({parts * (2 + dim)}, q.options().dtype(at::kFloat));
    partials.stats = reinterpret_cast<float2*>(merged.data_ptr<float>());
    partials.values = merged.data_ptr<float>() + 2 * parts;
    if (!counts.defined()) counts = at::zeros({b * kv_heads}, q.options().dtype(at::kInt));
    TORCH_CHECK(counts.is_cuda() && counts.is_contiguous() && counts.scalar_type() == at::kInt &&
                    counts.numel() >= b * kv_heads && counts.get_device() == q.get_device(),
                "decode_attention: arrivals must be a contiguous int32 CUDA tensor of at least "
                "batch * kv_heads = ", b * kv_heads, " zeros on q's device (KVCache's "
                "attention_arrivals), got ", counts.toString(), " of ", counts.numel());
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
               slot.data_ptr<int64_t>(), o, partials,
               splits > 1 ? counts.data_ptr<int>() : nullptr, static_cast<int>(heads),
               static_cast<int>(kv_heads), capacity, static_cast<float>(scale));
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

at::Tensor silu_of_halves(const at::Tensor& y) {
  TORCH_CHECK(y.dim() == 2 && y.size(1) % 2 == 0,
              "silu_of_halves: y must be [M, 2 * I], got ", y.sizes());
  const int64_t half = y.size(1) / 2;
  return silu_mul(y.narrow(1, 0, half), y.narrow(1, half, half));
}

}  // namespace qsweep::cuda
