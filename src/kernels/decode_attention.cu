// Decode attention over the KV cache (qsweep/kernels/decode_kernels.h): one query per row
// against the row's filled cache slots, split over blocks where the batch is too small to fill
// the GPU or the cache too long for one block, the last block of each (row, kv head) merging.
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/decode_kernels.h"

#include "kernel_util.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <utility>

namespace qsweep::cuda {
namespace {

using namespace detail;

constexpr int kAttentionThreads = 256;
constexpr int kAttentionWarps = kAttentionThreads / 32;
constexpr int kMaxGroup = 8;
// A block holds the scores of its run of slots in shared memory, so a run is at most
// kMaxRunSlots long and a longer cache is split over more blocks; runs shorter than kMinRunSlots
// would cost more to merge than they save.
constexpr int64_t kMaxRunSlots = 1024;
constexpr int64_t kMinRunSlots = 16;
constexpr int64_t kPlannedRunSlots = 64;  // the shortest run a chosen split plans for
constexpr int64_t kOnePassSlots = 256;    // the longest cache a chosen split leaves in one pass

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
    for (int e = 0; e < kVec; ++e)
      partial[(warp * kGroup + g) * kDim + piece * kVec + e] = acc[g][e];
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
    partials.stats[part * kGroup + threadIdx.x] =
        make_float2(row_max[threadIdx.x], row_sum[threadIdx.x]);
  for (int pair = threadIdx.x; pair < kGroup * kDim; pair += blockDim.x)
    partials.values[part * kGroup * kDim + pair] = warps_sum(pair);
  if (last_to_arrive(arrivals + unit, splits))
    merge_splits<T, kGroup, kDim>(partials, unit, splits, o);
}

// Runs body with an std::integral_constant of the query heads per kv head (1 to kMaxGroup).
template <typename Body>
void with_group(int64_t group, Body&& body) {
  static_assert(kMaxGroup == 8, "the list below covers 1 to kMaxGroup");
  const bool known = with_constant<1, 2, 3, 4, 5, 6, 7, 8>(group, body);
  TORCH_CHECK(known, "decode_attention: ", group, " query heads per kv head (at most ", kMaxGroup,
              ")");
}

// The shortest run attention_splits plans for when it chooses: kPlannedRunSlots, or
// QSWEEP_ATTENTION_MIN_RUN (kMinRunSlots to kMaxRunSlots), read per call, to measure the rule.
int64_t planned_min_run() {
  const char* env = std::getenv("QSWEEP_ATTENTION_MIN_RUN");
  if (env == nullptr) return kPlannedRunSlots;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  TORCH_CHECK(end != env && *end == '\0' && v >= kMinRunSlots && v <= kMaxRunSlots,
              "decode_attention: QSWEEP_ATTENTION_MIN_RUN='", env, "' is not a slot count from ",
              kMinRunSlots, " to ", kMaxRunSlots, "; unset it for ", kPlannedRunSlots);
  return v;
}

// Blocks per (row, kv head): at least enough that a run fits in shared memory; `requested` if
// given; else one pass for a cache of up to kOnePassSlots, and past it about two blocks per
// multiprocessor over the whole batch, as far as runs of planned_min_run() slots fill the
// cache. From 33 rows on Llama's 8 kv heads (264 blocks) an H200 is full and the batch stays
// in one pass. Measured on an H200 at batch 1 (docs/performance.md, session 14), µs at 128 /
// 512 / 1,024 slots: one pass 5.9 / 14.9 / 27.8, runs of 64 slots 7.7 / 8.9 / 10.5, of 256
// 5.9 (one pass) / 11.9 / 11.6.
int64_t attention_splits(int64_t requested, int64_t rows, int64_t kv_heads, int64_t capacity) {
  const int64_t for_space = (capacity + kMaxRunSlots - 1) / kMaxRunSlots;
  if (requested > 0) return std::max(requested, for_space);
  if (capacity <= kOnePassSlots) return 1;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t for_occupancy = (2 * sms + rows * kv_heads - 1) / (rows * kv_heads);
  const int64_t min_run = planned_min_run();
  const int64_t fillable = (capacity + min_run - 1) / min_run;
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

}  // namespace qsweep::cuda
