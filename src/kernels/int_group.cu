// Integer-group weights in GPTQ's layout: the fused dequantize-GEMV for decode and the
// dequantize-to-buffer for prefill. Layout facts are in qsweep/kernels/quant_kernels.h.
#include "qsweep/kernels/cluster_split.h"
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/quant_kernels.h"

#include "kernel_util.cuh"
#include "tile_mma.cuh"

#include <algorithm>
#include <cstdlib>

namespace qsweep::cuda {
namespace {

using namespace detail;

// qweight is [packed rows, out] with out contiguous, so a 16-byte load covers 4 output columns of
// one word row. A block owns 32 columns (8 threads x 4 columns = 128 contiguous bytes per row, a
// full cache line) and its 128 threads read 16 different 32-channel packs at once. `in` is split
// across the blocks of one cluster (up to 8, the portable cluster size), whose partial sums meet
// in distributed shared memory: one launch, no atomics, no workspace, the same order every call.
constexpr int kTileCols = 32;
constexpr int kVec = 4;
constexpr int kThreads = 128;
constexpr int kThreadsPerPack = kTileCols / kVec;
constexpr int kPackGroups = kThreads / kThreadsPerPack;
constexpr int kMaxBatchTile = 16;

// Row strides, in elements, of qweight, scales and zeros. They exceed the weight's own columns
// when it is a view into a stacked projection (qsweep/model/stacked_projections.h), whose
// parts sit side by side along the output dimension.
struct Strides {
  int q, s, z;
};

// Each input channel's group: g_idx's entry, or k >> shift where the groups are sequential (g_idx
// null) and of a power-of-two size (or one group: shift 31), which costs no load. A division in
// its place, some twenty instructions per channel, measured 5-10 % slower in the tile and
// dequantize kernels on an H200.
struct GroupMap {
  const int* g_idx;
  int shift;
  __device__ __forceinline__ int of(int k) const { return g_idx ? __ldg(g_idx + k) : k >> shift; }
};

// The output columns behind tile column `local` of column tile `tile`, for a GEMV storing through
// GemvRows' epilogue: kTileCols consecutive columns for a plain product; for a gate|up weight
// (rows.gate a multiple of kVec) 16 gate columns and then the 16 up columns rows.gate further
// on, so that the thread storing output j holds both sums. A column from rows.out on is none.
constexpr int kHalfTile = kTileCols / 2;
__host__ __device__ __forceinline__ int column_tiles(const GemvRows& rows) {
  return rows.gate ? (rows.gate + kHalfTile - 1) / kHalfTile
                   : (rows.out + kTileCols - 1) / kTileCols;
}
__device__ __forceinline__ int tile_column(const GemvRows& rows, int tile, int local) {
  if (rows.gate == 0) return tile * kTileCols + local;
  const int j = tile * kHalfTile + local % kHalfTile;
  return j < rows.gate ? j + local / kHalfTile * rows.gate : rows.out;
}

// Two sums that travel together through store_cluster_sums: a gate|up output's.
struct SumPair {
  float gate, up;
  __device__ SumPair& operator+=(const SumPair& o) {
    gate += o.gate, up += o.up;
    return *this;
  }
};

// Stores a block's sums part [kTile][kTileCols] (summed over its cluster) through GemvRows'
// epilogue: each column's product, or each gate|up pair's SiLU product.
template <typename T, int kTile>
__device__ __forceinline__ void store_tile(float* part, const GemvRows& rows, int m_rows, T* y) {
  const int tile = blockIdx.y;
  if (rows.gate == 0) {
    store_cluster_sums(part, gridDim.x, blockIdx.x, kTile * kTileCols,
                       [](const float* p, int o) { return p[o]; }, [&](int o, float v) {
                         const int m = o / kTileCols, n = tile_column(rows, tile, o % kTileCols);
                         if (m < m_rows && n < rows.out) store_product<T>(rows, y, m, n, v);
                       });
    return;
  }
  store_cluster_sums(
      part, gridDim.x, blockIdx.x, kTile * kHalfTile,
      [](const float* p, int o) {
        const int at = o / kHalfTile * kTileCols + o % kHalfTile;
        return SumPair{p[at], p[at + kHalfTile]};
      },
      [&](int o, SumPair v) {
        const int m = o / kHalfTile, j = tile_column(rows, tile, o % kHalfTile);
        if (m < m_rows && j < rows.gate) store_silu_gate_up<T>(rows, y, m, j, v.gate, v.up);
      });
}

// Two packs per thread keep twice the bytes in flight; at batch tiles of 8 and 16 the staged
// activations would outgrow static shared memory, and the arithmetic hides the latency anyway.
template <int kTile>
__host__ __device__ constexpr int packs_per_thread() { return kTile >= 8 ? 1 : 2; }

// Code j (0..31) of one column of a pack: bits [j * bits, j * bits + bits) of its `bits` words.
// j is a compile-time constant once the caller's loop is unrolled, so this folds to a shift, an
// AND and, for the two 3-bit fields that cross words, an OR.
template <int kBits, int kCols>
__device__ __forceinline__ uint32_t pack_code(const uint32_t (&w)[kBits][kCols], int j, int c) {
  const int bit = j * kBits;
  const int word = bit >> 5, off = bit & 31;
  return bit_field(w[word][c], off + kBits > 32 ? w[word + 1][c] : 0u, off, kBits);
}

__device__ __forceinline__ void load_columns(const uint32_t* row, int col0, int out, bool vector,
                                             uint32_t (&v)[kVec]) {
  if (vector) {
    const uint4 t = __ldg(reinterpret_cast<const uint4*>(row + col0));
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
#pragma unroll
    for (int c = 0; c < kVec; ++c) v[c] = col0 + c < out ? __ldg(row + col0 + c) : 0u;
  }
}

// The zero point of output column n in group g. The stored field is zero - 1, as GPTQ
// checkpoints keep it (linear.h), so 1 is added back, modulo 2^bits.
template <int kBits>
__device__ __forceinline__ uint32_t zero_of_stored(uint32_t stored) {
  return (stored + 1u) & ((1u << kBits) - 1u);
}
template <int kBits>
__device__ __forceinline__ uint32_t zero_point(const uint32_t* __restrict__ zeros, int g, int n,
                                               int zero_stride, int zero_words) {
  return zero_of_stored<kBits>(stream_bits(zeros + static_cast<int64_t>(g) * zero_stride,
                                           static_cast<int64_t>(n) * kBits, kBits, zero_words));
}

// Code pairs of a word, where no code crosses a word (2, 4 and 8 bits): shifted by `bits * i`
// and masked, the word's two 16-bit halves hold codes i and i + 16 / bits, and OR-ed into
// 1024.0's bits they are the fp16 values 1024 + q, exact. One fp16 pair subtraction of
// 1024 + zero then leaves q - zero for both, exact: with the conversion to fp32 and the
// multiply-add, 3.5 instructions per code where the fp32 route below spends five.
template <int kBits>
constexpr bool kWordAligned = kBits == 2 || kBits == 4 || kBits == 8;

template <int kBits>
__device__ __forceinline__ float2 code_pair_minus_zero(uint32_t word, int i, __half2 zero_1024) {
  constexpr uint32_t kMask = ((1u << kBits) - 1u) * 0x00010001u;
  uint32_t bits;
  // (a & b) | c in one instruction (truth table 0xea); nvcc splits it in two.
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n"
      : "=r"(bits)
      : "r"(word >> (kBits * i)), "n"(kMask), "r"(0x64006400u));
  return __half22float2(__hsub2(*reinterpret_cast<const __half2*>(&bits), zero_1024));
}
__device__ __forceinline__ __half2 zero_1024_pair(float zero) {
  return __float2half2_rn(1024.f + zero);
}

// dot[c] += x[i] * (q_i - zero_c) over the codes of words[c], a word of each of the thread's kVec
// columns; x holds the word's channels in order (in shared memory or in registers).
template <int kBits, typename X>
__device__ __forceinline__ void dot_word(const uint32_t (&words)[kVec], const X& x,
                                         const __half2 (&zero_1024)[kVec], float (&dot)[kVec]) {
  constexpr int kHalf = 16 / kBits;
#pragma unroll
  for (int i = 0; i < kHalf; ++i) {
    const float xa = x[i], xb = x[i + kHalf];
#pragma unroll
    for (int c = 0; c < kVec; ++c) {
      const float2 q = code_pair_minus_zero<kBits>(words[c], i, zero_1024[c]);
      dot[c] = fmaf(xb, q.y, fmaf(xa, q.x, dot[c]));
    }
  }
}

// acc[m][c] += sum over the pack's 32 channels of x[m][k] * scale * (q - zero), for a pack whose
// channels share one group: its scale and zero are read once.
template <typename T, int kBits, int kTile>
__device__ __forceinline__ void accumulate_pack(
    const uint32_t (&w)[kBits][kVec], const float* xs, int x_stride, int g,
    const T* __restrict__ scales, const uint32_t* __restrict__ zeros, int zero_words, Strides ld,
    int col0, int out, float (&acc)[kTile][kVec]) {
  float s[kVec], zero[kVec];
#pragma unroll
  for (int c = 0; c < kVec; ++c) {
    const int n = col0 + c;
    const bool in_range = n < out;
    s[c] = in_range ? to_float(scales[static_cast<int64_t>(g) * ld.s + n]) : 0.f;
    zero[c] = in_range ? static_cast<float>(zero_point<kBits>(zeros, g, n, ld.z, zero_words)) : 0.f;
  }
  if constexpr (kWordAligned<kBits> && kTile == 1) {
    // One batch row: the pack's sum of x * (q - zero) is scaled once. From two rows the fp32
    // route below measured faster (8192 x 2048 at four rows on the H200: 15.4 against 19.8 us;
    // not understood).
    float dot[kVec];
    __half2 zero_1024[kVec];
#pragma unroll
    for (int c = 0; c < kVec; ++c) dot[c] = 0.f, zero_1024[c] = zero_1024_pair(zero[c]);
#pragma unroll
    for (int wi = 0; wi < kBits; ++wi) dot_word<kBits>(w[wi], xs + wi * (32 / kBits), zero_1024, dot);
#pragma unroll
    for (int c = 0; c < kVec; ++c) acc[0][c] = fmaf(s[c], dot[c], acc[0][c]);
  } else {
    float zm[kVec];
#pragma unroll
    for (int c = 0; c < kVec; ++c) zm[c] = kMagic + zero[c];
#pragma unroll
    for (int j4 = 0; j4 < 8; ++j4) {
      float xv[kTile][4];
#pragma unroll
      for (int m = 0; m < kTile; ++m) {
        const float4 v = *reinterpret_cast<const float4*>(xs + m * x_stride + j4 * 4);
        xv[m][0] = v.x, xv[m][1] = v.y, xv[m][2] = v.z, xv[m][3] = v.w;
      }
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
#pragma unroll
        for (int c = 0; c < kVec; ++c) {
          const float wv = (magic_code(pack_code<kBits>(w, j4 * 4 + jj, c)) - zm[c]) * s[c];
#pragma unroll
          for (int m = 0; m < kTile; ++m) acc[m][c] = fmaf(xv[m][jj], wv, acc[m][c]);
        }
      }
    }
  }
}

// The same for a pack whose channels have different groups (act-order): scale and zero are
// looked up per channel, and the code is read back through L1 (the fast path's registers were
// just filled from the same lines) so that this rarely-fast path stays a small rolled loop.
template <typename T, int kBits, int kTile>
__device__ __forceinline__ void accumulate_pack_per_channel(
    const uint32_t* __restrict__ qweight, int pack, const float* xs, int x_stride,
    const int* chan_group, const T* __restrict__ scales, const uint32_t* __restrict__ zeros,
    int zero_words, Strides ld, int col0, int out, float (&acc)[kTile][kVec]) {
#pragma unroll 1
  for (int j = 0; j < 32; ++j) {
    const int g = chan_group[j];
    const int bit = j * kBits, word = bit >> 5, off = bit & 31;
    const uint32_t* row = qweight + (static_cast<int64_t>(pack) * kBits + word) * ld.q;
    float xv[kTile];
#pragma unroll
    for (int m = 0; m < kTile; ++m) xv[m] = xs[m * x_stride + j];
#pragma unroll
    for (int c = 0; c < kVec; ++c) {
      const int n = col0 + c;
      if (n >= out) continue;
      uint32_t q = __ldg(row + n) >> off;
      if (off + kBits > 32) q |= __ldg(row + ld.q + n) << (32 - off);
      q &= (1u << kBits) - 1u;
      const float s = to_float(scales[static_cast<int64_t>(g) * ld.s + n]);
      const float z = static_cast<float>(zero_point<kBits>(zeros, g, n, ld.z, zero_words));
      const float wv = (static_cast<float>(q) - z) * s;
#pragma unroll
      for (int m = 0; m < kTile; ++m) acc[m][c] = fmaf(xv[m], wv, acc[m][c]);
    }
  }
}

// Asks L2 for columns [col0, col0 + cols) of the word rows that hold channels [k_begin, k_end)
// (each row keeps the columns' 4-byte words side by side), the block's threads a row each in
// turn.
template <int kBits>
__device__ __forceinline__ void prefetch_columns(const uint32_t* qweight, int ld, int k_begin,
                                                 int k_end, int col0, int cols) {
  const int word_rows = (k_end - k_begin) / 32 * kBits;
  for (int r = threadIdx.x; r < word_rows; r += blockDim.x)
    prefetch_l2_lines(qweight + (static_cast<int64_t>(k_begin / 32) * kBits + r) * ld + col0,
                      cols * 4);
}

// ... for the columns of column tile `tile` (one span, or a gate|up tile's two).
template <int kBits>
__device__ __forceinline__ void prefetch_tile(const uint32_t* qweight, int ld, int k_begin,
                                              int k_end, const GemvRows& rows, int tile) {
  const int spans = rows.gate ? 2 : 1, width = kTileCols / spans;
  for (int s = 0; s < spans; ++s) {
    const int n0 = tile_column(rows, tile, s * width);
    if (n0 < rows.out)
      prefetch_columns<kBits>(qweight, ld, k_begin, k_end, n0, min(width, rows.out - n0));
  }
}

template <typename T, int kBits, int kTile>
__global__ void __launch_bounds__(kThreads)
    int_group_gemv_kernel(const T* __restrict__ x, const uint32_t* __restrict__ qweight,
                          const uint32_t* __restrict__ zeros, const T* __restrict__ scales,
                          GroupMap groups, T* __restrict__ y, int m_rows, int in, int zero_words,
                          Strides ld, GemvRows rows, int split_channels) {
  constexpr int kPacks = packs_per_thread<kTile>();
  constexpr int kChunkPacks = kPackGroups * kPacks;
  constexpr int kChunk = kChunkPacks * 32;
  static_assert(kChunk >= kPackGroups * kTileCols, "the reduction reuses the staging buffer");
  __shared__ __align__(16) float xs[kTile * kChunk];
  __shared__ int chan_group[kChunk];
  __shared__ int pack_group[kChunkPacks];
  __shared__ float part[kTile * kTileCols];

  const int out = rows.out;
  const int tid = threadIdx.x;
  const int group = tid / kThreadsPerPack;
  const int lane_col = (tid % kThreadsPerPack) * kVec;
  // Plain products only (rows.gate 0: the host leaves gate|up to the row kernel), so the columns
  // are the tile's consecutive ones. Spelled out here rather than through tile_column, the
  // kernel takes up to 40 fewer registers (CUDA 13 ptxas): three blocks per multiprocessor, not
  // two, at 128 threads.
  const int tile_col = blockIdx.y * kTileCols, col0 = tile_col + lane_col;
  const bool vector = out % kVec == 0 && ld.q % kVec == 0;
  const int k_begin = blockIdx.x * split_channels;
  const int k_end = min(in, k_begin + split_channels);
  prefetch_columns<kBits>(qweight, ld.q, k_begin, k_end, tile_col, min(kTileCols, out - tile_col));
  wait_then_release();

  float acc[kTile][kVec];
#pragma unroll
  for (int m = 0; m < kTile; ++m)
#pragma unroll
    for (int c = 0; c < kVec; ++c) acc[m][c] = 0.f;

  for (int c0 = k_begin; c0 < k_end; c0 += kChunk) {
    // The chunk's weight loads go out first, to be in flight while x is staged.
    uint32_t w[kPacks][kBits][kVec];
#pragma unroll
    for (int p = 0; p < kPacks; ++p) {
      const int k = c0 + (group + p * kPackGroups) * 32;
#pragma unroll
      for (int b = 0; b < kBits; ++b) {
        if (k < k_end && col0 < out)
          load_columns(qweight + (static_cast<int64_t>(k / 32) * kBits + b) * ld.q, col0, out,
                       vector, w[p][b]);
        else
#pragma unroll
          for (int c = 0; c < kVec; ++c) w[p][b][c] = 0u;
      }
    }
    __syncthreads();  // the previous chunk is no longer being read
    for (int i = tid; i < kTile * kChunk; i += kThreads) {
      const int m = i / kChunk, k = c0 + i % kChunk;
      xs[i] = m < m_rows && k < k_end ? to_float(x[static_cast<int64_t>(m) * in + k]) : 0.f;
    }
    // Each warp pass covers one whole pack (kChunk is a multiple of the block size), so the
    // vote says whether its 32 channels share a group.
    for (int i = tid; i < kChunk; i += kThreads) {
      const int k = c0 + i;
      const int g = k < k_end ? groups.of(k) : 0;
      chan_group[i] = g;
      const int g0 = __shfl_sync(0xffffffffu, g, 0);
      const bool same = __all_sync(0xffffffffu, g == g0);
      if ((tid & 31) == 0) pack_group[i / 32] = same ? g0 : -1;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < kPacks; ++p) {
      const int local = group + p * kPackGroups;
      if (c0 + local * 32 >= k_end || col0 >= out) continue;
      const int g = pack_group[local];
      if (g >= 0)
        accumulate_pack<T, kBits, kTile>(w[p], xs + local * 32, kChunk, g, scales, zeros,
                                         zero_words, ld, col0, out, acc);
      else
        accumulate_pack_per_channel<T, kBits, kTile>(qweight, c0 / 32 + local, xs + local * 32,
                                                     kChunk, chan_group + local * 32, scales,
                                                     zeros, zero_words, ld, col0, out, acc);
    }
  }

  // Sum the 16 pack groups of the block, then the blocks of the cluster.
  __syncthreads();
  float* red = xs;
#pragma unroll
  for (int m = 0; m < kTile; ++m)
#pragma unroll
    for (int c = 0; c < kVec; ++c) red[(group * kTile + m) * kTileCols + lane_col + c] = acc[m][c];
  __syncthreads();
  constexpr int kOutputs = kTile * kTileCols;
  for (int o = tid; o < kOutputs; o += kThreads) {
    float s = 0.f;
#pragma unroll
    for (int g = 0; g < kPackGroups; ++g) s += red[g * kOutputs + o];
    part[o] = s;
  }
  // Plain products: each thread stores the outputs whose sums it wrote just above.
  store_tile<T, kTile>(part, rows, m_rows, y);
}

// One pack's sum for one batch row: x[k] * scale * (q - zero) over its 32 channels (x_pack, 16-bit
// values in shared memory) for each of the thread's kVec columns, added into acc. s_raw holds the
// columns' kVec scales, zero_bits their stored zero fields side by side from bit 0.
template <typename T, int kBits>
__device__ __forceinline__ void dot_pack_row(const uint4 (&w)[kBits], const uint4* x_pack,
                                             uint2 s_raw, uint32_t zero_bits, float (&acc)[kVec]) {
  constexpr int kPerWord = 32 / kBits;
  const T* s = reinterpret_cast<const T*>(&s_raw);
  float dot[kVec];
  __half2 zero_1024[kVec];
#pragma unroll
  for (int c = 0; c < kVec; ++c) {
    const uint32_t zero = zero_of_stored<kBits>(zero_bits >> (c * kBits));
    zero_1024[c] = zero_1024_pair(static_cast<float>(zero));
    dot[c] = 0.f;
  }
#pragma unroll
  for (int wi = 0; wi < kBits; ++wi) {
    // The word's channels [wi * kPerWord, (wi + 1) * kPerWord): 8 per 16-byte piece of x.
    float xf[kPerWord];
#pragma unroll
    for (int q = 0; q < (kPerWord + 7) / 8; ++q) {
      float v[8];
      unpack8<T>(x_pack[(wi * kPerWord) / 8 + q], v);
#pragma unroll
      for (int e = 0; e < 8 && q * 8 + e < kPerWord; ++e)
        xf[q * 8 + e] = v[(wi * kPerWord) % 8 + e];
    }
    const uint32_t words[kVec] = {w[wi].x, w[wi].y, w[wi].z, w[wi].w};
    dot_word<kBits>(words, xf, zero_1024, dot);
  }
#pragma unroll
  for (int c = 0; c < kVec; ++c) acc[c] = fmaf(to_float(s[c]), dot[c], acc[c]);
}

// What a thread of int_group_row_kernel loads at a time: kRowPacks packs (128 bytes of codes at
// 4 and 8 bits; two 2-bit packs, as four spill), each pack's code words for its kVec columns,
// their scales and the word holding their zero fields.
template <int kBits>
struct RowPacks {
  static constexpr int kRowPacks = kBits >= 4 ? 8 / kBits : 2;
  uint4 w[kRowPacks][kBits];
  uint2 s[kRowPacks];
  uint32_t z[kRowPacks];
  bool live[kRowPacks];
};

// The packs at channels k0, k0 + stride, ...: the loads go out together, none waiting on another.
template <typename T, int kBits>
__device__ __forceinline__ void load_row_packs(RowPacks<kBits>& r, int k0, int stride, int k_end,
                                               bool live_col, const uint32_t* codes_col,
                                               const T* scales_col, const uint32_t* zero_col,
                                               int group_shift, Strides ld) {
#pragma unroll
  for (int p = 0; p < r.kRowPacks; ++p) {
    const int k = k0 + p * stride;
    const int64_t g = k >> group_shift;
    r.live[p] = live_col && k < k_end;
    const uint32_t* codes = codes_col + static_cast<int64_t>(k / 32) * kBits * ld.q;
#pragma unroll
    for (int b = 0; b < kBits; ++b)
      r.w[p][b] = r.live[p] ? __ldg(reinterpret_cast<const uint4*>(codes + b * ld.q))
                            : make_uint4(0, 0, 0, 0);
    r.s[p] = r.live[p] ? __ldg(reinterpret_cast<const uint2*>(scales_col + g * ld.s))
                       : make_uint2(0, 0);
    r.z[p] = r.live[p] ? __ldg(zero_col + g * ld.z) : 0u;
  }
}

// The decode step's GEMV: one batch row, sequential groups (a power of two from 32 channels, or
// one group), codes that do not cross words (2, 4, 8 bits), 16-byte column loads. The kernel
// above stages x and a chunk's groups in shared memory between barriers and reads scales and
// zeros after them, three dependent round trips per chunk; here a thread sends out its first
// packs' codes, scales and zero words before the block stages its x (once, kRowMaxChannels at
// most), and no other barrier comes before the reduction. Threads, tiles and the cluster split
// along `in` are the kernel above's.
constexpr int kRowMaxChannels = 8192;
template <typename T, int kBits>
__global__ void __launch_bounds__(kThreads, 7)
    int_group_row_kernel(const T* __restrict__ x, const uint32_t* __restrict__ qweight,
                         const uint32_t* __restrict__ zeros, const T* __restrict__ scales,
                         int group_shift, T* __restrict__ y, int in, Strides ld, GemvRows rows,
                         int split_channels) {
  static_assert(kWordAligned<kBits>, "codes that cross words take int_group_gemv_kernel");
  constexpr int kStride = kPackGroups * 32;
  __shared__ uint4 xs[kRowMaxChannels * sizeof(T) / 16];
  __shared__ float red[kPackGroups * kTileCols];
  __shared__ float part[kTileCols];
  const int tid = threadIdx.x, group = tid / kThreadsPerPack;
  const int lane_col = (tid % kThreadsPerPack) * kVec;
  const int col0 = tile_column(rows, blockIdx.y, lane_col);
  const int k_begin = blockIdx.x * split_channels, k_end = min(in, k_begin + split_channels);
  prefetch_tile<kBits>(qweight, ld.q, k_begin, k_end, rows, blockIdx.y);
  wait_then_release();

  const bool live_col = col0 < rows.out;
  const uint32_t* codes_col = qweight + col0;
  const T* scales_col = scales + col0;
  const uint32_t* zero_col = zeros + (static_cast<int64_t>(col0) * kBits >> 5);
  const int zero_shift = (col0 * kBits) & 31;
  RowPacks<kBits> r;
  int k0 = k_begin + group * 32;
  load_row_packs<T, kBits>(r, k0, kStride, k_end, live_col, codes_col, scales_col, zero_col,
                           group_shift, ld);
  const uint4* x_range = reinterpret_cast<const uint4*>(x + k_begin);
  for (int i = tid; i < (k_end - k_begin) * int{sizeof(T)} / 16; i += kThreads)
    xs[i] = __ldg(x_range + i);
  __syncthreads();

  float acc[kVec] = {0.f, 0.f, 0.f, 0.f};
  for (;;) {
#pragma unroll
    for (int p = 0; p < r.kRowPacks; ++p)
      if (r.live[p])
        dot_pack_row<T, kBits>(r.w[p], xs + (k0 + p * kStride - k_begin) * int{sizeof(T)} / 16,
                               r.s[p], r.z[p] >> zero_shift, acc);
    k0 += kStride * r.kRowPacks;
    if (k0 >= k_end) break;
    load_row_packs<T, kBits>(r, k0, kStride, k_end, live_col, codes_col, scales_col, zero_col,
                             group_shift, ld);
  }

#pragma unroll
  for (int c = 0; c < kVec; ++c) red[group * kTileCols + lane_col + c] = acc[c];
  __syncthreads();
  if (tid < kTileCols) {
    float sum = 0.f;
#pragma unroll
    for (int g = 0; g < kPackGroups; ++g) sum += red[g * kTileCols + tid];
    part[tid] = sum;
  }
  __syncthreads();
  store_tile<T, 1>(part, rows, 1, y);
}

template <typename T, int kBits>
__global__ void int_group_dequant_kernel(const uint32_t* __restrict__ qweight,
                                         const uint32_t* __restrict__ zeros,
                                         const T* __restrict__ scales, GroupMap groups,
                                         T* __restrict__ w, int in, int out, int zero_words,
                                         Strides ld) {
  wait_then_release();
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int pack = blockIdx.y;
  if (n >= out) return;
  uint32_t words[kBits][kVec];
#pragma unroll
  for (int b = 0; b < kBits; ++b)
    words[b][0] = __ldg(qweight + (static_cast<int64_t>(pack) * kBits + b) * ld.q + n);
  __align__(16) T vals[32];
  int last_group = -1;
  float s = 0.f, zm = kMagic;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const int g = groups.of(pack * 32 + j);
    if (g != last_group) {
      last_group = g;
      s = to_float(scales[static_cast<int64_t>(g) * ld.s + n]);
      zm = kMagic + static_cast<float>(zero_point<kBits>(zeros, g, n, ld.z, zero_words));
    }
    vals[j] = from_float<T>((magic_code(pack_code<kBits>(words, j, 0)) - zm) * s);
  }
  uint4* dst = reinterpret_cast<uint4*>(w + static_cast<int64_t>(n) * in + pack * 32);
  const uint4* src = reinterpret_cast<const uint4*>(vals);
#pragma unroll
  for (int i = 0; i < 4; ++i) dst[i] = src[i];
}

// The tensor-core path's view of the format (tile_mma.cuh). A tile of 64 columns x 128 channels
// is 64 x 4 packs; thread i of the block takes packs (i % 64, i / 64) and (i % 64, i / 64 + 2),
// so a warp reads 32 consecutive columns of one pack: 128 contiguous bytes per word row. Every
// lane of a warp holds the same pack, so a vote says whether its 32 channels share a group
// (then one scale and zero serve the pack) or not (act-order: per channel, through shuffles).
template <typename T, int kBits>
struct IntGroupTileLoader {
  const uint32_t* qweight;
  const uint32_t* zeros;
  const T* scales;
  GroupMap groups;
  int out, zero_words;
  Strides ld;

  static constexpr int kPacks = 2;
  struct Shared {};
  // What load() and resolve() fetch, used only by store(): the pack's code words, the group
  // of channel `lane`, and, once that has arrived, the pack's scale and the words that
  // hold its zero field.
  struct Raw {
    uint32_t w[kPacks][kBits][1];
    int lane_group[kPacks];
    bool live[kPacks];
    int group[kPacks];        // the pack's one group, or -1 (act-order)
    T scale[kPacks];
    uint32_t zero_lo[kPacks], zero_hi[kPacks];
  };

  __device__ void stage(Shared&) const {}

  __device__ void prefetch(int n0, int k_begin, int k_end) const {
    if (n0 < out)
      prefetch_columns<kBits>(qweight, ld.q, k_begin, k_end, n0, min(kMmaTileN, out - n0));
  }

  __device__ void load(const Shared&, int n0, int k0, int k_end, Raw& raw) const {
#pragma unroll
    for (int u = 0; u < kPacks; ++u) {
      const int i = threadIdx.x + u * kMmaThreads;
      const int n = n0 + i % kMmaTileN, k = k0 + (i / kMmaTileN) * 32;
      raw.live[u] = n < out && k < k_end;
#pragma unroll
      for (int b = 0; b < kBits; ++b)
        raw.w[u][b][0] = raw.live[u]
                             ? __ldg(qweight + (static_cast<int64_t>(k / 32) * kBits + b) * ld.q + n)
                             : 0u;
      raw.lane_group[u] = k < k_end ? groups.of(k + threadIdx.x % 32) : 0;
    }
  }

  // A step after load(), so the g_idx values have arrived: the vote, then the scale and zero loads.
  __device__ void resolve(const Shared&, int n0, Raw& raw) const {
#pragma unroll
    for (int u = 0; u < kPacks; ++u) {
      const int n = n0 + (threadIdx.x + u * kMmaThreads) % kMmaTileN;
      const int g0 = __shfl_sync(0xffffffffu, raw.lane_group[u], 0);
      raw.group[u] = __all_sync(0xffffffffu, raw.lane_group[u] == g0) ? g0 : -1;
      const bool fetch = raw.live[u] && raw.group[u] >= 0;
      const int64_t bit = static_cast<int64_t>(n) * kBits;
      const uint32_t* row = zeros + static_cast<int64_t>(g0) * ld.z + (bit >> 5);
      const bool crosses = (bit & 31) + kBits > 32 && (bit >> 5) + 1 < zero_words;
      raw.scale[u] = fetch ? scales[static_cast<int64_t>(g0) * ld.s + n] : from_float<T>(0.f);
      raw.zero_lo[u] = fetch ? __ldg(row) : 0u;
      raw.zero_hi[u] = fetch && crosses ? __ldg(row + 1) : 0u;
    }
  }

  __device__ void store(const Shared&, const Raw& raw, int n0, int, int k_end, T* ws) const {
#pragma unroll
    for (int u = 0; u < kPacks; ++u) {
      const int i = threadIdx.x + u * kMmaThreads;
      const int col = i % kMmaTileN, n = n0 + col;
      __align__(16) T v[32];
      if (raw.group[u] >= 0) {
        // Column n's zero field from the words resolve() read, as zero_point takes it.
        const int off = static_cast<int>((static_cast<int64_t>(n) * kBits) & 31);
        const uint32_t zero =
            zero_of_stored<kBits>(bit_field(raw.zero_lo[u], raw.zero_hi[u], off, kBits));
        const float zm = kMagic + static_cast<float>(raw.live[u] ? zero : 0u);
        const float scale = to_float(raw.scale[u]);
#pragma unroll
        for (int j = 0; j < 32; ++j)
          v[j] = from_float<T>((magic_code(pack_code<kBits>(raw.w[u], j, 0)) - zm) * scale);
      } else {
        // Unrolled like the fast path, so that the codes and v stay in registers.
#pragma unroll
        for (int j = 0; j < 32; ++j) {
          const int g = __shfl_sync(0xffffffffu, raw.lane_group[u], j);
          float wv = 0.f;
          if (n < out) {
            const float z = static_cast<float>(zero_point<kBits>(zeros, g, n, ld.z, zero_words));
            wv = (static_cast<float>(pack_code<kBits>(raw.w[u], j, 0)) - z) *
                 to_float(scales[static_cast<int64_t>(g) * ld.s + n]);
          }
          v[j] = from_float<T>(wv);
        }
      }
      uint4* dst = reinterpret_cast<uint4*>(ws + col * kMmaLd + (i / kMmaTileN) * 32);
#pragma unroll
      for (int q = 0; q < 4; ++q) dst[q] = reinterpret_cast<const uint4*>(v)[q];
    }
  }
};

struct IntGroupShape {
  int64_t in, out, groups, zero_words;
  Strides ld;
  GroupMap groups_of;
};

IntGroupShape check_int_group(const IntGroupTensors& w) {
  const int64_t bits = w.bits, in = w.in;
  TORCH_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8,
              "int-group: bits must be 2, 3, 4 or 8, got ", bits);
  TORCH_CHECK(in % 32 == 0, "int-group: in_features must be a multiple of 32 (GPTQ packs 32 "
              "channels into `bits` words), got ", in);
  const bool sequential = !w.g_idx.defined();
  const auto int32_rows = [](const at::Tensor& t) {
    return t.defined() && t.is_cuda() && t.scalar_type() == at::kInt && t.dim() >= 1 &&
           rows_contiguous(t);
  };
  TORCH_CHECK(int32_rows(w.qweight) && int32_rows(w.zeros) && (sequential || int32_rows(w.g_idx)),
              "int-group: qweight, zeros and g_idx (where given) must be int32 CUDA tensors "
              "with contiguous rows");
  TORCH_CHECK(w.qweight.dim() == 2 && w.qweight.size(0) == in * bits / 32,
              "int-group: qweight must be [in * bits / 32 = ", in * bits / 32, ", out], got ",
              w.qweight.sizes());
  const int64_t out = w.qweight.size(1);
  const at::Tensor& scales = w.scales;
  TORCH_CHECK(scales.defined() && scales.is_cuda() && scales.dim() == 2 &&
                  scales.size(1) == out && rows_contiguous(scales),
              "int-group: scales must be a CUDA tensor with contiguous rows [groups, out = ", out, "], got ",
              scales.sizes());
  const int64_t groups = scales.size(0);
  const int64_t zero_words = (out * bits + 31) / 32;
  TORCH_CHECK(w.zeros.dim() == 2 && w.zeros.size(0) == groups && w.zeros.size(1) == zero_words,
              "int-group: zeros must be [groups = ", groups, ", ceil(out * bits / 32) = ",
              zero_words, "], got ", w.zeros.sizes());
  const bool one_group = w.group_size >= in;
  const int group_log2 = log2_or_minus_one(w.group_size);
  TORCH_CHECK(!sequential || (w.group_size > 0 && (in + w.group_size - 1) / w.group_size == groups &&
                              (one_group || group_log2 >= 0)),
              "int-group: without g_idx, group_size must be a power of two (or at least in = ", in,
              ") with ceil(in / group_size) = ", groups, " groups (scales' rows), got ",
              w.group_size, "; give g_idx for other sizes");
  TORCH_CHECK(sequential || (w.g_idx.dim() == 1 && w.g_idx.size(0) == in),
              "int-group: g_idx must be [in = ", in, "], got ", w.g_idx.sizes());
  TORCH_CHECK(w.qweight.get_device() == scales.get_device() &&
                  w.qweight.get_device() == w.zeros.get_device() &&
                  (sequential || w.qweight.get_device() == w.g_idx.get_device()),
              "int-group: qweight, zeros, scales and g_idx must be on one device");
  TORCH_CHECK(in < (1ll << 31) / 32 && out < (1ll << 31) / 32,
              "int-group: in and out must stay below 2^26");
  const auto stride = [](const at::Tensor& t) { return static_cast<int>(t.stride(0)); };
  // One group: every channel's k >> 31 is 0.
  const GroupMap map{sequential ? nullptr : w.g_idx.data_ptr<int>(), one_group ? 31 : group_log2};
  return {in, out, groups, zero_words, {stride(w.qweight), stride(scales), stride(w.zeros)}, map};
}

// bits is checked to be 2, 3, 4 or 8 before this.
template <typename F>
void with_bits(int64_t bits, F&& f) {
  with_constant<2, 3, 4, 8>(bits, f);
}

// The blocks per multiprocessor the cluster split aims at: kSplitBlocksPerSm, or
// QSWEEP_INT_GROUP_BLOCKS_PER_SM (1 to 16), read per call, to measure the rule: the one-row
// GEMV fits 7 blocks a multiprocessor and ran at 0.55 waves under 4 (ncu, session 16).
constexpr int64_t kSplitBlocksPerSm = 4;
int64_t split_blocks_per_sm() {
  const char* env = std::getenv("QSWEEP_INT_GROUP_BLOCKS_PER_SM");
  if (env == nullptr) return kSplitBlocksPerSm;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  TORCH_CHECK(end != env && *end == '\0' && v >= 1 && v <= 16,
              "int_group_matmul: QSWEEP_INT_GROUP_BLOCKS_PER_SM='", env,
              "' is not a block count from 1 to 16; unset it for ", kSplitBlocksPerSm);
  return v;
}

// The cluster split along `in` (qsweep/kernels/cluster_split.h) on this device, each block a
// whole number of kPackGroups packs.
ClusterSplit split_for(int64_t in, int64_t tiles) {
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  return cluster_split(in, tiles, prop->multiProcessorCount, prop->major >= 9,
                       split_blocks_per_sm(), kPackGroups * 32);
}

// Whether one row of x can take int_group_row_kernel: computed groups whose packs each lie in
// one, codes within words, a block's x within its staging, and the 16-byte column, 8-byte scale
// and 16-byte x loads aligned.
bool row_kernel_fits(const at::Tensor& x, const IntGroupTensors& w, const IntGroupShape& shape,
                     int64_t channels) {
  return x.size(0) == 1 && channels <= kRowMaxChannels && !w.g_idx.defined() &&
         w.group_size % 32 == 0 && w.bits != 3 &&
         shape.out % kVec == 0 && shape.ld.q % kVec == 0 && shape.ld.s % kVec == 0 &&
         aligned16(w.qweight.data_ptr()) && aligned16(x.data_ptr()) &&
         reinterpret_cast<uintptr_t>(w.scales.data_ptr()) % 8 == 0;
}

// How a GEMV covers the weight: column tiles, the cluster split along `in`, and whether the row
// kernel takes it.
struct GemvPlan {
  GemvRows rows;
  int64_t tiles;
  ClusterSplit split;
  bool one_row;
};

GemvPlan plan_gemv(const at::Tensor& x, const IntGroupTensors& w, const IntGroupShape& shape,
                   const GemvIo& io) {
  const GemvRows rows = GemvRows::of(static_cast<int>(shape.out), io);
  const int64_t tiles = column_tiles(rows);
  TORCH_CHECK(tiles <= 65535, "int_group_matmul: out too large for one launch: ", shape.out);
  const ClusterSplit split = split_for(shape.in, tiles);
  return {rows, tiles, split, row_kernel_fits(x, w, shape, split.channels)};
}

template <typename T>
void launch_tile(const at::Tensor& x, const IntGroupTensors& w, const IntGroupShape& shape,
                 const at::Tensor& y, cudaStream_t stream) {
  with_bits(w.bits, [&](auto bits_c) {
    constexpr int kBits = decltype(bits_c)::value;
    const IntGroupTileLoader<T, kBits> loader{
        reinterpret_cast<const uint32_t*>(w.qweight.data_ptr()),
        reinterpret_cast<const uint32_t*>(w.zeros.data_ptr()),
        reinterpret_cast<const T*>(w.scales.data_ptr()), shape.groups_of,
        static_cast<int>(shape.out), static_cast<int>(shape.zero_words), shape.ld};
    launch_tile_mma(reinterpret_cast<const T*>(x.data_ptr()), reinterpret_cast<T*>(y.data_ptr()),
                    x.size(0), shape.in, shape.out, loader, stream);
  });
}

// The row kernel where the plan says so, else the GEMV over batch tiles of kMaxBatchTile rows.
template <typename T>
void launch_gemv(const at::Tensor& x, const IntGroupTensors& w, const IntGroupShape& shape,
                 const GemvPlan& p, const at::Tensor& y, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(p.split.blocks);
  const Launch config{dim3(blocks, static_cast<unsigned>(p.tiles)), dim3(kThreads), 0, stream,
                      dim3(blocks, 1)};
  const auto* qweight = reinterpret_cast<const uint32_t*>(w.qweight.data_ptr());
  const auto* zeros = reinterpret_cast<const uint32_t*>(w.zeros.data_ptr());
  const auto* scales = reinterpret_cast<const T*>(w.scales.data_ptr());
  const auto* xp = reinterpret_cast<const T*>(x.data_ptr());
  auto* yp = reinterpret_cast<T*>(y.data_ptr());
  const int in = static_cast<int>(shape.in), channels = static_cast<int>(p.split.channels);
  with_bits(w.bits, [&](auto bits_c) {
    constexpr int kBits = decltype(bits_c)::value;
    if constexpr (kWordAligned<kBits>) {
      if (p.one_row) {
        launch(config, int_group_row_kernel<T, kBits>, xp, qweight, zeros, scales,
               shape.groups_of.shift, yp, in, shape.ld, p.rows, channels);
        return;
      }
    }
    const int64_t m = x.size(0), y_cols = y.numel() / m;
    for (int64_t m0 = 0; m0 < m; m0 += kMaxBatchTile) {
      const int m_rows = static_cast<int>(std::min<int64_t>(kMaxBatchTile, m - m0));
      QSWEEP_DISPATCH_BATCH_TILE(m_rows, [&] {
        launch(config, int_group_gemv_kernel<T, kBits, kTile>, xp + m0 * in, qweight, zeros,
               scales, shape.groups_of, yp + m0 * y_cols, m_rows, in,
               static_cast<int>(shape.zero_words), shape.ld, p.rows, channels);
      });
    }
  });
}

}  // namespace

at::Tensor int_group_matmul(const at::Tensor& x, const IntGroupTensors& w, MatmulPath path,
                            const GemvIo& io) {
  TORCH_CHECK(x.defined() && x.is_cuda() && x.dim() == 2 && x.is_contiguous() && x.size(1) == w.in,
              "int_group_matmul: x must be a contiguous 2-D CUDA tensor [M, in = ", w.in, "]");
  const IntGroupShape shape = check_int_group(w);
  TORCH_CHECK(w.scales.scalar_type() == x.scalar_type(), "int_group_matmul: scales (",
              w.scales.scalar_type(), ") must have x's dtype (", x.scalar_type(), ")");
  TORCH_CHECK(x.get_device() == w.qweight.get_device(),
              "int_group_matmul: x and qweight must be on one device");
  TORCH_CHECK(aligned16(w.qweight.data_ptr()),
              "int_group_matmul: qweight must be 16-byte aligned");
  check_gemv_io(io, x, shape.out, "int_group_matmul");
  const bool gate_up = io.output == GemvOutput::silu_gate_up;
  TORCH_CHECK(!gate_up || shape.out % 2 == 0,
              "int_group_matmul: a gate|up weight has an even number of columns, got ", shape.out);
  const int64_t m = x.size(0);
  const bool tile = use_tensor_cores(path, m);
  const GemvPlan plan = plan_gemv(x, w, shape, io);
  // The GEMVs add into the residual; the row kernel also stores SiLU * up (where the gate
  // columns come in fours, so that a thread's four never straddle the halves). A norm, and
  // the other paths' products, take the kernels of gemv_io.h around.
  if (io.is_normed()) return int_group_matmul(normed_rows(x, io), w, path, io.without_norm());
  const bool own_epilogue = !tile && (!gate_up || (plan.one_row && shape.out / 2 % kVec == 0));
  if ((gate_up || io.adds()) && !own_epilogue)
    return finish_output(int_group_matmul(x, w, path), io);
  at::Tensor y = io.adds() ? io.residual
                           : at::empty({m, gate_up ? shape.out / 2 : shape.out}, x.options());
  if (m == 0 || shape.out == 0) return y;
  if (shape.in == 0) return io.adds() ? y : y.zero_();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "int_group_matmul", [&] {
    if (tile)
      launch_tile<scalar_t>(x, w, shape, y, stream);
    else
      launch_gemv<scalar_t>(x, w, shape, plan, y, stream);
  });
  return y;
}

at::Tensor int_group_dequantize(const IntGroupTensors& w) {
  const IntGroupShape shape = check_int_group(w);
  at::Tensor out = at::empty({shape.out, shape.in}, w.scales.options());
  if (out.numel() == 0) return out;
  TORCH_CHECK(shape.in / 32 <= 65535, "int_group_dequantize: in too large for one launch");
  constexpr int kBlock = 128;
  const dim3 grid(static_cast<unsigned>((shape.out + kBlock - 1) / kBlock),
                  static_cast<unsigned>(shape.in / 32));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_HALF_TYPES(w.scales.scalar_type(), "int_group_dequantize", [&] {
    with_bits(w.bits, [&](auto bits_c) {
      constexpr int kBits = decltype(bits_c)::value;
      launch({grid, dim3(kBlock), 0, stream}, int_group_dequant_kernel<scalar_t, kBits>,
             reinterpret_cast<const uint32_t*>(w.qweight.data_ptr()),
             reinterpret_cast<const uint32_t*>(w.zeros.data_ptr()),
             reinterpret_cast<const scalar_t*>(w.scales.data_ptr()), shape.groups_of,
             reinterpret_cast<scalar_t*>(out.data_ptr()), static_cast<int>(shape.in),
             static_cast<int>(shape.out), static_cast<int>(shape.zero_words), shape.ld);
    });
  });
  return out;
}

}  // namespace qsweep::cuda
