#pragma once
// The tensor-core matmul of a quantized weight for batches the GEMVs serve badly (8 to 64 rows
// of a decode batch, 33 to 64 for NF4/FP4, whose own tensor-core GEMV takes up to 32; past 64
// rows dequantize + cuBLAS is faster, linear.cpp). The FMA GEMVs spend one fp32 FMA per weight
// element per row, so at 8 to 16 rows they are bound by arithmetic; dequantizing the whole
// weight for cuBLAS instead writes and rereads it in 16 bits every step. Here a block
// dequantizes a 64 x 128 tile of the weight into shared memory once, stages the matching rows of
// x beside it, and multiplies the two with WMMA (fp32 accumulation): the stored weight is read
// once per 128 rows of x, and the arithmetic runs on tensor cores.
//
// The storage format enters through a Loader, a small struct of device functions:
//   Shared                     what the format keeps in shared memory (lookup tables)
//   Raw                        this thread's share of a tile's stored bytes, in registers
//   prefetch(n0, k0, k_end)    asks L2 for the stored bytes of rows [n0, n0 + kMmaTileN) and
//                              channels [k0, k_end), while the kernel before still runs
//                              (launch(), kernel_util.cuh); a hint only
//   stage(Shared&)             fills Shared and synchronizes the block
//   load(Shared&, n0, k0, k_end, Raw&)        issues the loads of tile (n0, k0)
//   resolve(Shared&, n0, Raw&)                issues the loads that depend on load's values
//                                             (a scale found through g_idx), a step later
//   store(Shared&, Raw&, n0, k0, k_end, T* w) dequantizes them into w [kMmaTileN][kMmaLd]
// load and resolve only issue loads and never use what they load: a use would stall the warp
// there, before the multiply the loads are meant to overlap, until the bytes arrive.
// While a tile is multiplied, the next tile's x (cp.async, two shared buffers) and the weight bytes
// of the tile after it (two register stages) are in flight; and there are enough blocks for
// several per multiprocessor. `in` is split across the blocks of a cluster (compute capability 9.0),
// whose partial tiles meet in distributed shared memory, as in the GEMVs: no workspace, no
// atomics, the same summation order every call.
#include "kernel_util.cuh"
#include "qsweep/kernels/cuda_check.h"

#include <mma.h>

#include <algorithm>

namespace qsweep::cuda::detail {

constexpr int kMmaThreads = 128;             // four warps, each owning 16 output features
constexpr int kMmaTileN = 64;
constexpr int kMmaTileK = 128;
constexpr int kMmaLd = kMmaTileK + 8;        // row pitch in elements: 16-byte aligned rows whose
                                             // starts fall 4 banks apart
constexpr int kMmaOutLd = kMmaTileN + 4;     // pitch of the fp32 partial tile
constexpr int kMmaMaxRowTiles = 8;           // 128 rows of x per block
constexpr int kMmaPortableSplit = 8;         // blocks per cluster, the portable limit
constexpr int kMmaMaxSplit = 16;             // ... and Hopper's, with the non-portable opt-in
constexpr int kMmaBlocksPerSm = 6;

template <int kRowTiles>
constexpr size_t tile_mma_shared_bytes() {
  const size_t staged = size_t{kMmaTileN + 2 * 16 * kRowTiles} * kMmaLd * 2;  // w + two x tiles
  const size_t partial = size_t{16 * kRowTiles} * kMmaOutLd * sizeof(float);
  return staged > partial ? staged : partial;
}

// 16 bytes global -> shared without passing through registers (sm_80+); src_bytes 0 writes zeros.
__device__ __forceinline__ void copy_async_16(void* dst, const void* src, int src_bytes) {
  const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Starts copying rows [m0, m0 + 16 * kRowTiles) and channels [k0, k0 + kMmaTileK) of x into xs,
// zeros past m_rows and k_end, and commits the copies as one group. in and k_end are multiples
// of 8, so each 16-byte piece is whole or absent.
template <typename T, int kRowTiles>
__device__ __forceinline__ void stage_x_tile(const T* __restrict__ x, T* xs, int m0, int m_rows,
                                             int in, int k0, int k_end) {
  constexpr int kPieces = kMmaTileK / 8;
#pragma unroll
  for (int i = threadIdx.x; i < 16 * kRowTiles * kPieces; i += kMmaThreads) {
    const int r = i / kPieces, k = k0 + (i % kPieces) * 8;
    const bool live = m0 + r < m_rows && k < k_end;
    copy_async_16(xs + r * kMmaLd + (i % kPieces) * 8,
                  live ? x + static_cast<int64_t>(m0 + r) * in + k : x, live ? 16 : 0);
  }
  copy_async_commit();
}

// Writes the block's fp32 tile `part` [16 * kRowTiles][kMmaOutLd] to y, summed over the blocks of
// the cluster when `in` was split. Rows past m_rows are neither summed nor written.
template <typename T, int kRowTiles>
__device__ __forceinline__ void store_tile(float* part, T* __restrict__ y, int n0, int m0,
                                           int m_rows, int out) {
  const int rows = min(16 * kRowTiles, m_rows - m0);
  auto at = [](const float* p, int o) { return p[(o / kMmaTileN) * kMmaOutLd + o % kMmaTileN]; };
  auto store = [&](int o, float v) {
    const int n = n0 + o % kMmaTileN;
    if (n < out) y[static_cast<int64_t>(m0 + o / kMmaTileN) * out + n] = from_float<T>(v);
  };
  store_cluster_sums(part, gridDim.y, blockIdx.y, rows * kMmaTileN, at, store);
}

// Block (x, y, z) computes y[m0 .. m0 + 16 * kRowTiles, n0 .. n0 + 64] over channels
// [y * split_channels, (y + 1) * split_channels), with n0 = 64 x and m0 = 16 * kRowTiles * z.
template <typename T, int kRowTiles, typename Loader>
__global__ void __launch_bounds__(kMmaThreads)
    tile_mma_kernel(const T* __restrict__ x, T* __restrict__ y, int m_rows, int in, int out,
                    int split_channels, Loader loader) {
  namespace wmma = nvcuda::wmma;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ typename Loader::Shared shared;
  T* ws = reinterpret_cast<T*>(smem);   // [kMmaTileN][kMmaLd], row n holds channels k of feature n
  T* xs = ws + kMmaTileN * kMmaLd;      // two buffers of [16 * kRowTiles][kMmaLd]
  const int warp = threadIdx.x / 32;
  const int n0 = blockIdx.x * kMmaTileN, m0 = blockIdx.z * 16 * kRowTiles;
  const int k_begin = blockIdx.y * split_channels;
  const int k_end = min(in, k_begin + split_channels);
  if (blockIdx.z == 0) loader.prefetch(n0, k_begin, k_end);  // the row chunks share the tile
  wait_then_release();
  loader.stage(shared);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kRowTiles];
#pragma unroll
  for (int t = 0; t < kRowTiles; ++t) wmma::fill_fragment(acc[t], 0.f);

  // Two register stages of weight loads and two shared buffers of x: while one tile is
  // multiplied, the next one's x and the one after's weight bytes are in flight.
  typename Loader::Raw raw0, raw1;
  stage_x_tile<T, kRowTiles>(x, xs, m0, m_rows, in, k_begin, k_end);
  if (k_begin < k_end) loader.load(shared, n0, k_begin, k_end, raw0);
  if (k_begin + kMmaTileK < k_end) loader.load(shared, n0, k_begin + kMmaTileK, k_end, raw1);
  loader.resolve(shared, n0, raw0);
  // `raw` holds tile k0, `next` tile k0 + kMmaTileK.
  const auto step = [&](typename Loader::Raw& raw, typename Loader::Raw& next, int k0, int buf) {
    T* x_now = xs + buf * 16 * kRowTiles * kMmaLd;
    T* x_next = xs + (buf ^ 1) * 16 * kRowTiles * kMmaLd;
    if (k0 + kMmaTileK < k_end)
      stage_x_tile<T, kRowTiles>(x, x_next, m0, m_rows, in, k0 + kMmaTileK, k_end);
    else
      copy_async_commit();  // an empty group keeps the wait below counting the same
    loader.store(shared, raw, n0, k0, k_end, ws);
    copy_async_wait<1>();  // this tile's x has landed
    __syncthreads();
    if (k0 + 2 * kMmaTileK < k_end) loader.load(shared, n0, k0 + 2 * kMmaTileK, k_end, raw);
    if (k0 + kMmaTileK < k_end) loader.resolve(shared, n0, next);
#pragma unroll
    for (int kk = 0; kk < kMmaTileK; kk += 16) {
      // W^T [k, n] is column-major in ws: element (k, n) at ws[n * kMmaLd + k].
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
      wmma::load_matrix_sync(b, ws + warp * 16 * kMmaLd + kk, kMmaLd);
#pragma unroll
      for (int t = 0; t < kRowTiles; ++t) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::load_matrix_sync(a, x_now + t * 16 * kMmaLd + kk, kMmaLd);
        wmma::mma_sync(acc[t], a, b, acc[t]);
      }
    }
    __syncthreads();  // ws and x_now are no longer read
  };
  // Unrolled by two so that each register stage is a named variable, not an indexed array
  // (which would live in local memory).
  for (int k0 = k_begin; k0 < k_end; k0 += 2 * kMmaTileK) {
    step(raw0, raw1, k0, 0);
    if (k0 + kMmaTileK < k_end) step(raw1, raw0, k0 + kMmaTileK, 1);
  }
  copy_async_wait<0>();
  float* part = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int t = 0; t < kRowTiles; ++t)
    wmma::store_matrix_sync(part + t * 16 * kMmaOutLd + warp * 16, acc[t], kMmaOutLd,
                            wmma::mem_row_major);
  __syncthreads();
  store_tile<T, kRowTiles>(part, y, n0, m0, m_rows, out);
}

// The most blocks one cluster may hold for `kernel`: 16 where the device allows clusters past
// the portable 8 (Hopper does, on request), 8 otherwise, 1 before compute capability 9.
template <typename Kernel>
int max_cluster_blocks(Kernel kernel, size_t shared_bytes) {
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  if (prop->major < 9) return 1;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
    (void)cudaGetLastError();
    return kMmaPortableSplit;
  }
  cudaLaunchConfig_t probe = {};
  probe.gridDim = dim3(1, kMmaMaxSplit, 1);
  probe.blockDim = dim3(kMmaThreads);
  probe.dynamicSmemBytes = shared_bytes;
  cudaLaunchAttribute cluster = cluster_dims(1, kMmaMaxSplit);
  probe.attrs = &cluster;
  probe.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &probe) != cudaSuccess || clusters == 0) {
    (void)cudaGetLastError();
    return kMmaPortableSplit;
  }
  return kMmaMaxSplit;
}

// Once per kernel variant: its shared-memory opt-in, then the largest cluster it may use.
template <typename T, int kRowTiles, typename Loader>
int setup_tile_mma() {
  auto kernel = tile_mma_kernel<T, kRowTiles, Loader>;
  constexpr size_t kShared = tile_mma_shared_bytes<kRowTiles>();
  QSWEEP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(kShared)));
  return max_cluster_blocks(kernel, kShared);
}
template <typename T, int kRowTiles, typename Loader>
int tile_mma_max_split() {
  static const int max_split = setup_tile_mma<T, kRowTiles, Loader>();
  return max_split;
}

// y [m, out] = x [m, in] W^T through `loader`. in must be a multiple of 32; x and y contiguous.
template <typename T, typename Loader>
void launch_tile_mma(const T* x, T* y, int64_t m, int64_t in, int64_t out, const Loader& loader,
                     cudaStream_t stream) {
  const int row_tiles = m <= 16 ? 1 : m <= 32 ? 2 : m <= 64 ? 4 : kMmaMaxRowTiles;
  const int64_t row_chunks = (m + 16 * row_tiles - 1) / (16 * row_tiles);
  const int64_t col_tiles = (out + kMmaTileN - 1) / kMmaTileN;
  TORCH_CHECK(row_chunks <= 65535, "tile_mma: more rows than one launch covers: ", m);
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;

  const auto run = [&](auto tiles_c) {
    constexpr int kRowTiles = decltype(tiles_c)::value;
    auto kernel = tile_mma_kernel<T, kRowTiles, Loader>;
    constexpr size_t kShared = tile_mma_shared_bytes<kRowTiles>();
    const int max_split = tile_mma_max_split<T, kRowTiles, Loader>();
    // Enough blocks for kMmaBlocksPerSm on every multiprocessor, so that latency is hidden by
    // blocks in flight; `in` is split in whole tiles.
    int64_t split = (kMmaBlocksPerSm * sms + col_tiles * row_chunks - 1) / (col_tiles * row_chunks);
    split = std::clamp<int64_t>(split, 1, std::min<int64_t>(max_split, (in + kMmaTileK - 1) / kMmaTileK));
    const int64_t split_channels =
        ((in + split - 1) / split + kMmaTileK - 1) / kMmaTileK * kMmaTileK;
    split = (in + split_channels - 1) / split_channels;

    const Launch config{dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(split),
                             static_cast<unsigned>(row_chunks)),
                        dim3(kMmaThreads), kShared, stream, dim3(1, static_cast<unsigned>(split))};
    launch(config, kernel, x, y, static_cast<int>(m), static_cast<int>(in), static_cast<int>(out),
           static_cast<int>(split_channels), loader);
  };
  static_assert(kMmaMaxRowTiles == 8, "row_tiles is 1, 2, 4 or kMmaMaxRowTiles");
  with_constant<1, 2, 4, 8>(row_tiles, run);
}

}  // namespace qsweep::cuda::detail
