// bitsandbytes 4-bit weights (NF4 or FP4, with or without double quantization): the fused
// dequantize-GEMV for decode and the dequantize-to-buffer for prefill.
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/quant_kernels.h"

#include "kernel_util.cuh"
#include "rms_norm_row.cuh"
#include "tile_mma.cuh"

#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace qsweep::cuda {
namespace {

using namespace detail;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
// Rows per warp: the activations a lane loads for its 32 columns serve this many weight rows.
constexpr int kRows = 2;
static_assert(kRows == 2, "row groups are GemvRows' pairs");
// Pieces (16 bytes, 32 codes) a lane loads before it uses the first: a decode GEMV at these
// sizes is a few DRAM round trips, not a stream, so what counts is how many are in flight.
constexpr int kUnroll = 2;
constexpr int kMaxBatchTile = 16;
constexpr int kNestedBlocks = 256;  // absmax blocks per second-level scale (bitsandbytes)

// The absmax of one block of `blocksize` elements, plain or double-quantized. With double
// quantization the 256-value code2 table is read from shared memory (the kernel stages it),
// so a block's absmax costs one byte from DRAM and no dependent DRAM read.
struct Absmax {
  const float* plain;     // [blocks], or null with double quantization
  const uint8_t* codes;   // [blocks]
  const float* scale2;    // [ceil(blocks / 256)]
  const float* code2;     // [256]
  const float* offsets;   // [ceil(blocks / 256)], or null: `offset` for every block
  float offset;
  int64_t blocksize;
  int block_shift;        // log2(blocksize), or -1 where it is not a power of two

  // The block of element e of the flattened weight: a shift for the power-of-two sizes
  // bitsandbytes writes, where a 64-bit division would cost a GEMV lane tens of instructions
  // per piece.
  __device__ __forceinline__ int64_t block_of(int64_t e) const {
    return block_shift >= 0 ? e >> block_shift : e / blocksize;
  }

  // A block's absmax as stored: the plain float, or the nested code, its second-level scale
  // and offset. load() only issues the reads; combine() uses them (the tile kernel calls the
  // two a pipeline stage apart, so that the use does not wait for the reads).
  struct Parts {
    float plain, scale2, shift;
    uint32_t code;
  };
  // The _as forms take the layout as a compile-time fact, for a kernel compiled per layout:
  // with no branch between them, the reads of several blocks go out together.
  template <bool kNested>
  __device__ __forceinline__ Parts load_as(int64_t block) const {
    if constexpr (!kNested) return {__ldg(plain + block), 0.f, 0.f, 0u};
    const int64_t nested = block / kNestedBlocks;
    return {0.f, __ldg(scale2 + nested), offsets ? __ldg(offsets + nested) : offset,
            __ldg(codes + block)};
  }
  template <bool kNested>
  __device__ __forceinline__ float combine_as(const Parts& p, const float* code2_shared) const {
    if constexpr (kNested) return code2_shared[p.code] * p.scale2 + p.shift;
    return p.plain;
  }
  __device__ __forceinline__ Parts load(int64_t block) const {
    return plain ? load_as<false>(block) : load_as<true>(block);
  }
  __device__ __forceinline__ float combine(const Parts& p, const float* code2_shared) const {
    return plain ? combine_as<false>(p, code2_shared) : combine_as<true>(p, code2_shared);
  }
  __device__ __forceinline__ float operator()(int64_t block, const float* code2_shared) const {
    return combine(load(block), code2_shared);
  }
};

// The NF4/FP4 table and, with double quantization, code2, in shared memory.
struct Tables {
  float lut[16];
  float code2[256];
};

__device__ __forceinline__ void stage_tables(Tables& t, const float* code, const Absmax& absmax) {
  if (threadIdx.x < 16) t.lut[threadIdx.x] = code[threadIdx.x];
  if (!absmax.plain)
    for (int i = threadIdx.x; i < 256; i += blockDim.x) t.code2[i] = absmax.code2[i];
  __syncthreads();
}

// A float at a shared-memory address (as __cvta_generic_to_shared gives it). Volatile keeps it
// after the barrier that publishes the table it reads.
__device__ __forceinline__ float ld_shared(uint32_t address) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(address));
  return v;
}

// Rows whose length is a multiple of 32 start on a 16-byte boundary, and 16 bytes hold 32 codes
// of one absmax block (blocksize is a power of two from 32), so each lane reads whole 16-byte
// pieces. kSplit warps share kRows rows and split the row's pieces between them (long rows, as
// in down_proj, would otherwise leave few warps with long serial loops); lane l of slice s takes
// pieces s * 32 + l, then every 32 * kSplit further, kUnroll at a time. kNested: the absmax is
// double-quantized. kNormed: the block multiplies RMSNorm(x) with `norm` (gemv_input_rows).
template <typename T, int kTile, int kSplit, bool kNested, bool kNormed>
__global__ void __launch_bounds__(kThreads)
    bnb4_gemv_kernel(const uint4* __restrict__ packed, const float* __restrict__ code, Absmax absmax,
                     const T* __restrict__ x, const T* __restrict__ norm, float eps,
                     T* __restrict__ y, int m_rows, int in, GemvRows rows) {
  constexpr int kGroups = kWarps / kSplit;  // row groups per block
  // On a 256-byte boundary, so that an entry's address is the table's with its low byte
  // replaced by the code times four: one byte permute per code makes it.
  __shared__ __align__(256) Tables tables;
  __shared__ float partial[kWarps][kRows][kTile];
  const int pieces = in / 32;
  const int first = blockIdx.x * kGroups;  // the block's first row group
  if (threadIdx.x < rows.runs()) {
    const int2 run = rows.run(first, kGroups, threadIdx.x);
    prefetch_l2(packed + static_cast<int64_t>(run.x) * pieces, int64_t{run.y - run.x} * pieces * 16);
  }
  wait_then_release();
  stage_tables(tables, code, absmax);
  const T* xs = gemv_input_rows<kNormed, T, kThreads>(x, norm, eps, m_rows, in);
  const uint32_t lut = static_cast<uint32_t>(__cvta_generic_to_shared(tables.lut));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = first + warp / kSplit;
  int n_of[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) n_of[r] = rows.row(group, r);

  float acc[kRows][kTile];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < kTile; ++m) acc[r][m] = 0.f;

  for (int p0 = (warp % kSplit) * 32 + lane; p0 < pieces; p0 += 32 * kSplit * kUnroll) {
    // Every read of the step goes out before the first use: a double-quantized absmax needs its
    // code byte before its code2 entry, and waiting on it between pieces would queue a DRAM
    // round trip per piece.
    uint4 wq[kUnroll][kRows];
    Absmax::Parts parts[kUnroll][kRows];
    bool live[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int p = p0 + u * 32 * kSplit;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int n = n_of[r];
        live[u][r] = n < rows.out && p < pieces;
        const int64_t piece = static_cast<int64_t>(n) * pieces + p;
        wq[u][r] = live[u][r] ? __ldg(packed + piece) : make_uint4(0, 0, 0, 0);
        parts[u][r] = absmax.load_as<kNested>(live[u][r] ? (piece * 32) >> absmax.block_shift : 0);
      }
    }
    float am[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        am[u][r] = live[u][r] ? absmax.combine_as<kNested>(parts[u][r], tables.code2) : 0.f;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int p = p0 + u * 32 * kSplit;
      if (p >= pieces) break;
      // At one row, once the weights stream during the kernel before (launch()), arithmetic is
      // what is left: a piece's 32 codes share one absmax, which then scales their sum once
      // instead of each code. With more rows the extra sums cost more than the multiplies
      // (8192 x 2048 on the H200: 7.7 against 9.0 us at M = 1, 19.2 against 15.0 us at M = 4).
      constexpr bool kScaleSums = kTile == 1;
      float dot[kRows][kTile];
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int m = 0; m < kTile; ++m) dot[r][m] = 0.f;
      float (&sum)[kRows][kTile] = kScaleSums ? dot : acc;
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        float wv[kRows][8];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const uint4& q = wq[u][r];
          const uint32_t word = s == 0 ? q.x : s == 1 ? q.y : s == 2 ? q.z : q.w;
          const float scale = kScaleSums ? 1.f : am[u][r];
          // Each byte's two codes (the first in the high nibble) times four, four bytes at a
          // time; byte b of these under the table's upper address bytes is an entry's address.
          const uint32_t first = (word >> 2) & 0x3c3c3c3cu, second = (word << 2) & 0x3c3c3c3cu;
#pragma unroll
          for (int b = 0; b < 4; ++b) {
            wv[r][2 * b] = ld_shared(__byte_perm(first, lut, 0x7650 + b)) * scale;
            wv[r][2 * b + 1] = ld_shared(__byte_perm(second, lut, 0x7650 + b)) * scale;
          }
        }
#pragma unroll
        for (int m = 0; m < kTile; ++m) {
          if (kTile > 1 && m >= m_rows) break;
          float xf[8];
          unpack8<T>(load_input16<kNormed>(xs + static_cast<int64_t>(m) * in + p * 32 + s * 8),
                     xf);
#pragma unroll
          for (int r = 0; r < kRows; ++r)
#pragma unroll
            for (int i = 0; i < 8; ++i) sum[r][m] = fmaf(xf[i], wv[r][i], sum[r][m]);
        }
      }
      if constexpr (kScaleSums)
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r][0] = fmaf(am[u][r], dot[r][0], acc[r][0]);
    }
  }
  store_split_sums<T, kWarps, kSplit>(acc, partial, warp, lane, rows, first, m_rows, y);
}

// The tensor-core GEMV. The FMA GEMV above spends close to four instructions per weight element
// on extracting a code, looking it up in shared memory and multiply-adding it. Here one
// shared-memory load turns a byte (two codes) into the 16-bit pair an mma operand register
// holds, and the multiply-adds run on tensor cores: m16n8k16 with x as A (up to 16 batch rows,
// the rest zero) and eight weight rows as B.
//
// A warp owns eight weight rows; lane (g, c) = (lane / 4, lane % 4) holds codes [16 c, 16 c + 16)
// of row g in each 64-code chunk of it. An mma's 16 k positions are taken in a lane-dependent
// order (k = 2c, 2c+1, 2c+8, 2c+9 of step s are the chunk's codes 16c + 4s + 0..3), and A takes
// x in the same order, so the dot products are those of the natural order. A chunk lies in one
// absmax block (blocksize a power of two from 64): its four mmas sum unscaled code values,
// which are then scaled by the absmax in fp32, once per chunk and row. The code values are
// rounded to the compute dtype before the multiply (bitsandbytes' own GEMV rounds code * absmax).
constexpr int kMmaGemvWarps = 8;
constexpr int kMmaGemvThreads = 32 * kMmaGemvWarps;
constexpr int kChunkShift = 6;
constexpr int kChunk = 1 << kChunkShift;  // codes of a row per lane quad and absmax scaling
constexpr int64_t kMmaGemvMaxRows = 32;  // `automatic` takes the tile kernel past this
// Chunks of a row a warp has in flight (8 bytes per lane each): a batch of them is loaded while
// the one before is multiplied, so a warp keeps 2 KB to 4 KB in flight. Lane c of a quad reads
// the absmax of every fourth chunk of a batch.
constexpr int kChunksInFlight = 8;
constexpr int kScalesPerLane = kChunksInFlight / 4;
// Chunks per warp at least, where the rows allow: a warp's setup (tables, addresses, the final
// sum) costs about as much as a few chunks, so slicing rows thinner than this loses.
constexpr int kMinChunksPerWarp = 2 * kChunksInFlight;
// GemvRows groups (row pairs) per warp's eight rows.
constexpr int kPairsPerWarp = 4;

// One batch of a lane's chunks as loaded: the codes and the absmax parts.
struct ChunkBatch {
  uint2 wq[kChunksInFlight];
  Absmax::Parts parts[kScalesPerLane];
};

// Each byte's two code values in T as one register of an mma operand (the byte's first code, in
// its high nibble, in the lower half), 32 times over: lane l reads column l, so the 32 bytes a
// warp looks up at once meet 32 different banks, whatever their values.
struct PairTable {
  uint32_t pair[256][32];
};

// A warp's 16-byte stores cover 512 contiguous bytes, four bytes' rows of the table.
template <typename T>
__device__ __forceinline__ void stage_pairs(PairTable& t, const float* __restrict__ code) {
  for (int i = threadIdx.x; i < 256 * 8; i += blockDim.x) {
    const int byte = i / 8;
    const T lo = from_float<T>(__ldg(code + (byte >> 4)));
    const T hi = from_float<T>(__ldg(code + (byte & 15)));
    const uint32_t v = uint32_t{*reinterpret_cast<const uint16_t*>(&lo)} |
                       uint32_t{*reinterpret_cast<const uint16_t*>(&hi)} << 16;
    reinterpret_cast<uint4*>(t.pair[byte])[i % 8] = make_uint4(v, v, v, v);
  }
}

// One chunk's dot products for this lane's part of D (unscaled code values): four mmas, each
// taking two bytes of codes through `lane_pairs` (this lane's column of the table).
template <typename T, bool kUpper>
__device__ __forceinline__ void chunk_mma(float (&d)[4], const uint32_t* lane_pairs, uint2 wq,
                                          const T* x_lo, const T* x_hi, bool lo_live,
                                          bool hi_live) {
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 xlo[2], xhi[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    xlo[h] = lo_live ? __ldg(reinterpret_cast<const uint4*>(x_lo) + h) : zero;
    xhi[h] = kUpper && hi_live ? __ldg(reinterpret_cast<const uint4*>(x_hi) + h) : zero;
  }
  const uint32_t* a_lo = reinterpret_cast<const uint32_t*>(xlo);
  const uint32_t* a_hi = reinterpret_cast<const uint32_t*>(xhi);
#pragma unroll
  for (int s = 0; s < 4; ++s) {
    const uint32_t word = s < 2 ? wq.x : wq.y, byte = 2 * (s % 2);
    // A byte permute moves the byte to the bottom; the load scales it by the table's row.
    const uint32_t b0 = lane_pairs[32 * __byte_perm(word, 0, 0x4440 + byte)];
    const uint32_t b1 = lane_pairs[32 * __byte_perm(word, 0, 0x4441 + byte)];
    const uint32_t a[4] = {a_lo[2 * s], a_hi[2 * s], a_lo[2 * s + 1], a_hi[2 * s + 1]};
    mma_16816<T>(d, a, b0, b1);
  }
}

// The weight row behind D's column `col` (0-7) of warp group `group`: the rows of GemvRows
// groups [4 group, 4 group + 4), a plain product's in order, a gate|up weight's four gate rows
// and then their four up rows (so that lane c < 2 and lane c + 2 hold a gate and its up).
__device__ __forceinline__ int mma_column_row(const GemvRows& rows, int group, int col) {
  return rows.gate ? rows.row(kPairsPerWarp * group + col % 4, col / 4)
                   : rows.row(kPairsPerWarp * group + col / 2, col % 2);
}

// kSplit warps share eight rows and take every kSplit-th chunk; kUpper: batch rows 8-15 are live.
// y is stored through GemvRows' epilogue (a gate|up product's gate rows a multiple of four).
template <typename T, bool kUpper, int kSplit>
__global__ void __launch_bounds__(kMmaGemvThreads, 2)
    bnb4_mma_gemv_kernel(const uint2* __restrict__ packed, const float* __restrict__ code,
                         Absmax absmax, const T* __restrict__ x, T* __restrict__ y, int m_rows,
                         int in, GemvRows rows) {
  constexpr int kGroups = kMmaGemvWarps / kSplit;
  __shared__ Tables tables;
  __shared__ __align__(16) PairTable pairs;
  __shared__ float4 partial[kMmaGemvWarps][32];
  const int chunks = in / kChunk;
  const int64_t row_units = in / 16;  // 8-byte units (16 codes) per row
  const int first = blockIdx.x * kGroups;
  if (threadIdx.x < rows.runs()) {
    const int2 run = rows.run(kPairsPerWarp * first, kPairsPerWarp * kGroups, threadIdx.x);
    prefetch_l2(packed + run.x * row_units, int64_t{run.y - run.x} * in / 2);
  }
  wait_then_release();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int group = first + warp / kSplit;
  // A column past the last row reads row out - 1; it only reaches D's columns never stored.
  const int n = min(mma_column_row(rows, group, g), rows.out - 1);
  const uint2* w_row = packed + n * row_units + c;
  const T* x_lo = x + static_cast<int64_t>(g) * in + 16 * c;
  const T* x_hi = x + static_cast<int64_t>(g + 8) * in + 16 * c;
  const bool lo_live = g < m_rows, hi_live = kUpper && g + 8 < m_rows;
  // Chunk j of this row lies in absmax block (row_chunk0 + j) >> chunk_shift.
  const int chunk_shift = absmax.block_shift - kChunkShift;
  const int64_t row_chunk0 = static_cast<int64_t>(n) * chunks;

  // Batch j0's loads: codes of chunks j0 + u * kSplit, and lane c's absmax of every fourth.
  const auto load = [&](int j0) {
    ChunkBatch b;
#pragma unroll
    for (int u = 0; u < kChunksInFlight; ++u) {
      const int j = j0 + u * kSplit;
      b.wq[u] = j < chunks ? __ldg(w_row + 4 * j) : make_uint2(0, 0);
    }
#pragma unroll
    for (int i = 0; i < kScalesPerLane; ++i) {
      const int j = j0 + (4 * i + c) * kSplit;
      b.parts[i] = absmax.load(j < chunks ? (row_chunk0 + j) >> chunk_shift : 0);
    }
    return b;
  };
  constexpr int kStep = kSplit * kChunksInFlight;
  // The first batch does not depend on the tables: it is in flight while they are staged.
  ChunkBatch next = load(warp % kSplit);
  stage_pairs<T>(pairs, code);
  stage_tables(tables, code, absmax);  // synchronizes the block
  const uint32_t* lane_pairs = &pairs.pair[0][lane];

  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (int j0 = warp % kSplit; j0 < chunks; j0 += kStep) {
    const ChunkBatch now = next;
    if (j0 + kStep < chunks) next = load(j0 + kStep);
    float scale[kScalesPerLane];
#pragma unroll
    for (int i = 0; i < kScalesPerLane; ++i) scale[i] = absmax.combine(now.parts[i], tables.code2);
#pragma unroll
    for (int u = 0; u < kChunksInFlight; ++u) {
      const int j = j0 + u * kSplit;
      if (j >= chunks) break;
      float d[4] = {0.f, 0.f, 0.f, 0.f};
      chunk_mma<T, kUpper>(d, lane_pairs, now.wq[u], x_lo + int64_t{kChunk} * j,
                           x_hi + int64_t{kChunk} * j, lo_live, hi_live);
      // D's columns 2c and 2c + 1 are rows 2c and 2c + 1, whose chunk u's absmax lane u % 4 of
      // their quad holds.
      const float s0 = __shfl_sync(0xffffffffu, scale[u / 4], 8 * c + u % 4);
      const float s1 = __shfl_sync(0xffffffffu, scale[u / 4], 8 * c + 4 + u % 4);
      acc[0] = fmaf(s0, d[0], acc[0]);
      acc[1] = fmaf(s1, d[1], acc[1]);
      if constexpr (kUpper) {
        acc[2] = fmaf(s0, d[2], acc[2]);
        acc[3] = fmaf(s1, d[3], acc[3]);
      }
    }
  }
  // The group's first warp adds the other slices in a fixed order.
  if constexpr (kSplit > 1) {
    partial[warp][lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
    __syncthreads();
    if (warp % kSplit) return;
#pragma unroll
    for (int s = 1; s < kSplit; ++s) {
      const float4 p = partial[warp + s][lane];
      acc[0] += p.x, acc[1] += p.y, acc[2] += p.z, acc[3] += p.w;
    }
  }
  // acc[i] is batch row g + 8 (i / 2) of D's column 2c + i % 2.
#pragma unroll
  for (int i = 0; i < (kUpper ? 4 : 2); ++i) {
    const int m = g + 8 * (i / 2), col = 2 * c + i % 2;
    if (rows.gate == 0) {
      const int row = mma_column_row(rows, group, col);
      if (m < m_rows && row < rows.out) store_product<T>(rows, y, m, row, acc[i]);
    } else {
      // Lanes c and c + 2 hold a gate row and its up row.
      const float up = __shfl_down_sync(0xffffffffu, acc[i], 2);
      const int j = kPairsPerWarp * group + col;
      if (c < 2 && m < m_rows && j < rows.gate) store_silu_gate_up<T>(rows, y, m, j, acc[i], up);
    }
  }
}

// Any shape: one warp per row, one element per lane and step, rows starting mid-byte included.
template <typename T, int kTile>
__global__ void __launch_bounds__(kThreads)
    bnb4_gemv_any_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ code,
                         Absmax absmax, const T* __restrict__ x, T* __restrict__ y, int m_rows,
                         int in, int out) {
  __shared__ Tables tables;
  wait_then_release();
  stage_tables(tables, code, absmax);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + warp;
  if (n >= out) return;
  float acc[kTile];
#pragma unroll
  for (int m = 0; m < kTile; ++m) acc[m] = 0.f;
  for (int k = lane; k < in; k += 32) {
    const int64_t e = static_cast<int64_t>(n) * in + k;
    const uint32_t byte = __ldg(packed + (e >> 1));
    const float w = tables.lut[(e & 1) ? byte & 0xfu : byte >> 4] * absmax(absmax.block_of(e), tables.code2);
#pragma unroll
    for (int m = 0; m < kTile; ++m)
      if (m < m_rows) acc[m] = fmaf(to_float(x[static_cast<int64_t>(m) * in + k]), w, acc[m]);
  }
#pragma unroll
  for (int m = 0; m < kTile; ++m) {
    const float v = warp_sum(acc[m]);
    if (lane == 0 && m < m_rows) y[static_cast<int64_t>(m) * out + n] = from_float<T>(v);
  }
}

// One thread per byte: the flattened output index equals the flattened weight index.
template <typename T>
__global__ void bnb4_dequant_kernel(const uint8_t* __restrict__ packed,
                                    const float* __restrict__ code, Absmax absmax,
                                    T* __restrict__ w, int64_t numel) {
  __shared__ Tables tables;
  wait_then_release();
  stage_tables(tables, code, absmax);
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t e = 2 * i;
  if (e >= numel) return;
  const uint32_t byte = __ldg(packed + i);
  // e and e + 1 share a block: blocksize is even
  const float am = absmax(absmax.block_of(e), tables.code2);
  w[e] = from_float<T>(tables.lut[byte >> 4] * am);
  if (e + 1 < numel) w[e + 1] = from_float<T>(tables.lut[byte & 0xfu] * am);
}

// The tensor-core path's view of the format (tile_mma.cuh). A tile row of 128 channels is four
// 16-byte pieces; thread i of the block takes pieces i and i + 128 of the tile's 256, so a warp
// reads 64 contiguous bytes of each of 8 rows.
template <typename T>
struct Bnb4TileLoader {
  const uint4* packed;
  const float* code;
  Absmax absmax;
  int in, out;

  static constexpr int kPieces = 2;
  using Shared = Tables;
  // A piece's codes and its block's absmax as stored, combined in store() (combining here
  // would wait for the reads).
  struct Raw {
    uint4 q[kPieces];
    Absmax::Parts absmax[kPieces];
  };

  __device__ void stage(Shared& t) const { stage_tables(t, code, absmax); }

  // Row n's channels [k_begin, k_end) are (k_end - k_begin) / 2 contiguous bytes.
  __device__ void prefetch(int n0, int k_begin, int k_end) const {
    const int n = n0 + threadIdx.x;
    if (threadIdx.x < kMmaTileN && n < out && k_begin < k_end)
      prefetch_l2(packed + (static_cast<int64_t>(n) * in + k_begin) / 32, (k_end - k_begin) / 2);
  }

  __device__ void load(const Shared&, int n0, int k0, int k_end, Raw& raw) const {
#pragma unroll
    for (int u = 0; u < kPieces; ++u) {
      const int i = threadIdx.x + u * kMmaThreads;
      const int n = n0 + i / 4, k = k0 + (i % 4) * 32;
      const bool live = n < out && k < k_end;
      const int64_t e = static_cast<int64_t>(n) * in + k;
      raw.q[u] = live ? __ldg(packed + e / 32) : make_uint4(0, 0, 0, 0);
      raw.absmax[u] = live ? absmax.load(absmax.block_of(e)) : Absmax::Parts{0.f, 0.f, 0.f, 0u};
    }
  }

  __device__ void resolve(const Shared&, int, Raw&) const {}

  __device__ void store(const Shared& t, const Raw& raw, int, int, int, T* ws) const {
#pragma unroll
    for (int u = 0; u < kPieces; ++u) {
      const int i = threadIdx.x + u * kMmaThreads;
      const float scale = absmax.combine(raw.absmax[u], t.code2);
      uint4* dst = reinterpret_cast<uint4*>(ws + (i / 4) * kMmaLd + (i % 4) * 32);
      // A row's pieces p and p + 2 start 128 bytes apart, on the same bank groups: pieces 2
      // and 3 write their quarters in the order 2, 3, 0, 1, so a quarter-warp's eight 16-byte
      // stores meet eight bank groups instead of four twice.
      const int turn = i & 2;
      const uint4 q = raw.q[u];
      const uint32_t words[4] = {turn ? q.z : q.x, turn ? q.w : q.y, turn ? q.x : q.z, turn ? q.y : q.w};
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        __align__(16) T v[8];
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const uint32_t byte = (words[s] >> (8 * b)) & 0xffu;
          v[2 * b] = from_float<T>(t.lut[byte >> 4] * scale);
          v[2 * b + 1] = from_float<T>(t.lut[byte & 0xfu] * scale);
        }
        dst[s ^ turn] = *reinterpret_cast<const uint4*>(v);
      }
    }
  }
};

// Batch rows 16 at a time; warps per row group: as many as leave each kMinChunksPerWarp chunks.
void launch_mma_gemv(const at::Tensor& x, const Bnb4Tensors& w, const Absmax& absmax,
                     const GemvRows& rows, at::Tensor& y, cudaStream_t stream) {
  const int64_t chunks = w.in / kChunk;
  const int split = chunks >= 8 * kMinChunksPerWarp   ? 8
                    : chunks >= 4 * kMinChunksPerWarp ? 4
                    : chunks >= 2 * kMinChunksPerWarp ? 2
                                                      : 1;
  const Launch config{dim3(static_cast<unsigned>(rows.blocks(kMmaGemvWarps / split * kPairsPerWarp))),
                      dim3(kMmaGemvThreads), 0, stream};
  const int64_t y_cols = y.size(1);
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "bnb4_matmul", [&] {
    for (int64_t m0 = 0; m0 < x.size(0); m0 += 16) {
      const int m_rows = static_cast<int>(std::min<int64_t>(16, x.size(0) - m0));
      const auto gemv = [&](auto upper_c, auto split_c) {
        constexpr bool kUpper = decltype(upper_c)::value;
        constexpr int kSplit = decltype(split_c)::value;
        launch(config, bnb4_mma_gemv_kernel<scalar_t, kUpper, kSplit>,
               reinterpret_cast<const uint2*>(w.packed.data_ptr()), w.code.data_ptr<float>(),
               absmax, reinterpret_cast<const scalar_t*>(x.data_ptr()) + m0 * w.in,
               reinterpret_cast<scalar_t*>(y.data_ptr()) + m0 * y_cols, m_rows,
               static_cast<int>(w.in), rows);
      };
      with_constant<1, 2, 4, 8>(split, [&](auto split_c) {
        if (m_rows > 8)
          gemv(std::true_type{}, split_c);
        else
          gemv(std::false_type{}, split_c);
      });
    }
  });
}

// Whether a one-row product takes the tensor-core GEMV (QSWEEP_BNB4_ONE_ROW=mma) or the FMA
// GEMV (=fma, the default), read per call so that one build measures both. On an H200 (session
// 15) the tensor-core GEMV, with about 40 % fewer instructions per code, was the slower in the
// step: NF4 + dq 1.024 against 0.817 ms/token (and 10.0 against 8.9 us alone, 8192 x 2048).
bool one_row_on_tensor_cores() {
  const char* env = std::getenv("QSWEEP_BNB4_ONE_ROW");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "fma") == 0) return false;
  TORCH_CHECK(std::strcmp(env, "mma") == 0, "bnb4_matmul: QSWEEP_BNB4_ONE_ROW='", env,
              "' is neither fma nor mma; unset it for the default (fma)");
  return true;
}

Absmax check_bnb4(const Bnb4Tensors& w) {
  TORCH_CHECK(w.out >= 0 && w.in >= 0, "bnb4: out and in must be non-negative");
  TORCH_CHECK(w.blocksize > 0 && w.blocksize % 2 == 0, "bnb4: blocksize must be positive and even, got ",
              w.blocksize);
  const int64_t numel = w.out * w.in;
  const int64_t blocks = (numel + w.blocksize - 1) / w.blocksize;
  TORCH_CHECK(w.packed.defined() && w.packed.is_cuda() && w.packed.scalar_type() == at::kByte &&
                  w.packed.is_contiguous() && w.packed.numel() == (numel + 1) / 2,
              "bnb4: packed must be a contiguous uint8 CUDA tensor of ceil(out * in / 2) = ",
              (numel + 1) / 2, " bytes");
  TORCH_CHECK(w.code.defined() && w.code.is_cuda() && w.code.scalar_type() == at::kFloat &&
                  w.code.numel() == 16 && w.code.is_contiguous(),
              "bnb4: code must be a contiguous float32 CUDA tensor of 16 values");
  const bool double_quant = !w.absmax.defined();
  auto check_float = [&](const at::Tensor& t, int64_t n, const char* name) {
    TORCH_CHECK(t.defined() && t.is_cuda() && t.scalar_type() == at::kFloat && t.numel() == n &&
                    t.is_contiguous(),
                "bnb4: ", name, " must be a contiguous float32 CUDA tensor of ", n, " values");
  };
  if (!double_quant) {
    check_float(w.absmax, blocks, "absmax");
    TORCH_CHECK(!w.qabsmax.defined(), "bnb4: give either absmax or qabsmax, not both");
    TORCH_CHECK(!w.offsets.defined(), "bnb4: offsets belong to double quantization");
    return {w.absmax.data_ptr<float>(), nullptr, nullptr, nullptr, nullptr, 0.f, w.blocksize,
            log2_or_minus_one(w.blocksize)};
  }
  TORCH_CHECK(w.qabsmax.defined() && w.qabsmax.is_cuda() && w.qabsmax.scalar_type() == at::kByte &&
                  w.qabsmax.numel() == blocks && w.qabsmax.is_contiguous(),
              "bnb4: qabsmax must be a contiguous uint8 CUDA tensor of ", blocks,
              " values (one per block) when absmax is undefined");
  const int64_t nested = (blocks + kNestedBlocks - 1) / kNestedBlocks;
  check_float(w.absmax2, nested, "absmax2");
  check_float(w.code2, 256, "code2");
  if (w.offsets.defined()) check_float(w.offsets, nested, "offsets");
  return {nullptr, w.qabsmax.data_ptr<uint8_t>(), w.absmax2.data_ptr<float>(),
          w.code2.data_ptr<float>(), w.offsets.defined() ? w.offsets.data_ptr<float>() : nullptr,
          static_cast<float>(w.offset), w.blocksize, log2_or_minus_one(w.blocksize)};
}

void check_bnb4_input(const at::Tensor& x, const Bnb4Tensors& w, const GemvIo& io) {
  TORCH_CHECK(x.defined() && x.is_cuda() && x.dim() == 2 && x.is_contiguous() &&
                  x.size(1) == w.in,
              "bnb4_matmul: x must be a contiguous 2-D CUDA tensor [M, in = ", w.in, "]");
  TORCH_CHECK(x.get_device() == w.packed.get_device(),
              "bnb4_matmul: x and packed must be on one device");
  TORCH_CHECK(w.in < (1ll << 31) && w.out < (1ll << 31), "bnb4_matmul: in and out must fit int32");
  check_gemv_io(io, x, w.out, "bnb4_matmul");
  TORCH_CHECK(io.output != GemvOutput::silu_gate_up || w.out % 2 == 0,
              "bnb4_matmul: a gate|up weight has an even number of rows, got ", w.out);
}

// Which kernel computes the product, and whether it stores through GemvIo's epilogue itself.
struct Bnb4Plan {
  bool tile;            // the tensor-core tile kernel (tile_mma.cuh)
  bool mma_gemv;        // the tensor-core GEMV
  bool shifted_pieces;  // the FMA piece kernel can find a piece's absmax block by a shift
  bool piece_kernel;    // the FMA piece kernel: it norms its input and stores every epilogue
  bool own_epilogue;    // no kernel of gemv_io.h is needed after the product
};

Bnb4Plan plan_bnb4(const at::Tensor& x, const Bnb4Tensors& w, const Absmax& absmax,
                   MatmulPath path, const GemvIo& io) {
  const int64_t m = x.size(0);
  const bool pieces = w.in % 32 == 0 && w.blocksize % 32 == 0 &&
                      aligned16(w.packed.data_ptr()) && aligned16(x.data_ptr());
  const bool chunks = w.in % kChunk == 0 && absmax.block_shift >= kChunkShift && pieces &&
                      at::cuda::getCurrentDeviceProperties()->major >= 8;
  // Measured on an H200 (docs/performance.md, session 10), NF4 + double quant, 8192 x 2048: the
  // tensor-core GEMV takes 10.5-11.7 us at 4 to 16 rows and 21.7 at 32, the FMA GEMV 15.7-109 and
  // the tile kernel 17.1-28.6. One row: see one_row_on_tensor_cores(); an input to be normed
  // stays with the FMA GEMV, whose prologue norms it.
  const bool mma_rows = m >= 2 || (m == 1 && !io.is_normed() && one_row_on_tensor_cores());
  Bnb4Plan p{};
  p.mma_gemv = chunks && mma_rows && path != MatmulPath::tensor_core;
  p.tile = pieces && use_tensor_cores(path, m, chunks ? kMmaGemvMaxRows + 1 : kTensorCoreRows);
  // bitsandbytes' block sizes are powers of two; any other size takes the any-shape kernel's
  // division.
  p.shifted_pieces = pieces && absmax.block_shift >= 0;
  // The tensor-core GEMV has the epilogues (gate|up where the gate rows come in fours); the
  // other paths take the kernels of gemv_io.h around their product.
  p.piece_kernel = p.shifted_pieces && !p.tile && !p.mma_gemv;
  const bool gate_up = io.output == GemvOutput::silu_gate_up;
  p.own_epilogue = p.piece_kernel || (p.mma_gemv && (!gate_up || w.out / 2 % kPairsPerWarp == 0));
  return p;
}

void launch_bnb4_tile(const at::Tensor& x, const Bnb4Tensors& w, const Absmax& absmax,
                      at::Tensor& y, cudaStream_t stream) {
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "bnb4_matmul", [&] {
    const Bnb4TileLoader<scalar_t> loader{reinterpret_cast<const uint4*>(w.packed.data_ptr()),
                                          w.code.data_ptr<float>(), absmax,
                                          static_cast<int>(w.in), static_cast<int>(w.out)};
    launch_tile_mma(reinterpret_cast<const scalar_t*>(x.data_ptr()),
                    reinterpret_cast<scalar_t*>(y.data_ptr()), x.size(0), w.in, w.out, loader,
                    stream);
  });
}

// The FMA GEMVs, kMaxBatchTile rows of x at a time: the piece kernel (its slices per row, its
// absmax kind and whether it norms x, io.is_normed(), as template arguments), or the any-shape
// kernel where the absmax blocks are not a power of two.
void launch_fma_gemv(const at::Tensor& x, const Bnb4Tensors& w, const Absmax& absmax,
                     const GemvRows& rows_of_w, const GemvIo& io, bool shifted_pieces,
                     at::Tensor& y, cudaStream_t stream) {
  const int64_t m = x.size(0);
  const bool normed = io.is_normed();
  const int split = warps_per_row(w.in / 32, kUnroll);
  const int64_t blocks =
      shifted_pieces ? rows_of_w.blocks(kWarps / split) : (w.out + kWarps - 1) / kWarps;
  const int64_t y_cols = io.output == GemvOutput::silu_gate_up ? w.out / 2 : w.out;
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "bnb4_matmul", [&] {
    const auto* norm =
        normed ? reinterpret_cast<const scalar_t*>(io.norm_weight.data_ptr()) : nullptr;
    for (int64_t m0 = 0; m0 < m; m0 += kMaxBatchTile) {
      const int rows = static_cast<int>(std::min<int64_t>(kMaxBatchTile, m - m0));
      const auto* xp = reinterpret_cast<const scalar_t*>(x.data_ptr()) + m0 * w.in;
      auto* yp = reinterpret_cast<scalar_t*>(y.data_ptr()) + m0 * y_cols;
      const Launch config{dim3(static_cast<unsigned>(blocks)), dim3(kThreads),
                          gemv_input_bytes<scalar_t>(normed, rows, w.in), stream};
      QSWEEP_DISPATCH_BATCH_TILE(rows, [&] {
        const auto gemv = [&](auto split_c, auto nested_c) {
          const auto with_norm = [&](auto normed_c) {
            launch(config,
                   bnb4_gemv_kernel<scalar_t, kTile, decltype(split_c)::value,
                                    decltype(nested_c)::value, decltype(normed_c)::value>,
                   reinterpret_cast<const uint4*>(w.packed.data_ptr()), w.code.data_ptr<float>(),
                   absmax, xp, norm, static_cast<float>(io.norm_eps), yp, rows,
                   static_cast<int>(w.in), rows_of_w);
          };
          // A normed input is one row (gemv_norms): its variant is the one-row kernel's only.
          if constexpr (kTile == 1) {
            if (normed) return with_norm(std::true_type{});
          }
          with_norm(std::false_type{});
        };
        if (shifted_pieces)
          with_constant<1, 2, 4>(split, [&](auto split_c) {
            if (absmax.plain)
              gemv(split_c, std::false_type{});
            else
              gemv(split_c, std::true_type{});
          });
        else
          launch(config, bnb4_gemv_any_kernel<scalar_t, kTile>, w.packed.data_ptr<uint8_t>(),
                 w.code.data_ptr<float>(), absmax, xp, yp, rows, static_cast<int>(w.in),
                 static_cast<int>(w.out));
      });
    }
  });
}

}  // namespace

at::Tensor bnb4_matmul(const at::Tensor& x, const Bnb4Tensors& w, MatmulPath path,
                       const GemvIo& io) {
  const Absmax absmax = check_bnb4(w);
  check_bnb4_input(x, w, io);
  const Bnb4Plan plan = plan_bnb4(x, w, absmax, path, io);
  const bool gate_up = io.output == GemvOutput::silu_gate_up;
  const int64_t m = x.size(0);
  bool normed = io.is_normed() && plan.piece_kernel;
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "bnb4_matmul", [&] {
    normed = normed && gemv_norms<scalar_t>(m, w.in, x.data_ptr(), io.norm_weight.data_ptr());
  });
  // From here on io.is_normed() says that the piece kernel norms x.
  if (io.is_normed() && !normed) return bnb4_matmul(normed_rows(x, io), w, path, io.without_norm());
  if ((gate_up || io.adds()) && !plan.own_epilogue)
    return finish_output(bnb4_matmul(x, w, path), io);
  at::Tensor y = io.adds() ? io.residual : at::empty({m, gate_up ? w.out / 2 : w.out}, x.options());
  if (m == 0 || w.out == 0) return y;
  if (w.in == 0) return io.adds() ? y : y.zero_();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const GemvRows rows = GemvRows::of(static_cast<int>(w.out), io);
  if (plan.tile)
    launch_bnb4_tile(x, w, absmax, y, stream);
  else if (plan.mma_gemv)
    launch_mma_gemv(x, w, absmax, rows, y, stream);
  else
    launch_fma_gemv(x, w, absmax, rows, io, plan.shifted_pieces, y, stream);
  return y;
}

at::Tensor bnb4_dequantize(const Bnb4Tensors& w, at::ScalarType dtype) {
  const Absmax absmax = check_bnb4(w);
  at::Tensor out = at::empty({w.out, w.in}, w.packed.options().dtype(dtype));
  const int64_t numel = out.numel();
  if (numel == 0) return out;
  constexpr int kBlock = 256;
  const int64_t bytes = (numel + 1) / 2;
  const Launch config{dim3(static_cast<unsigned>((bytes + kBlock - 1) / kBlock)), dim3(kBlock), 0,
                      at::cuda::getCurrentCUDAStream()};
  QSWEEP_DISPATCH_HALF_TYPES(dtype, "bnb4_dequantize", [&] {
    launch(config, bnb4_dequant_kernel<scalar_t>, w.packed.data_ptr<uint8_t>(),
           w.code.data_ptr<float>(), absmax, reinterpret_cast<scalar_t*>(out.data_ptr()), numel);
  });
  return out;
}

}  // namespace qsweep::cuda
