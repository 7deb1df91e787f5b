// LLM.int8(): per-row int8 activations against int8 weight rows, with the outlier columns in
// float32 against the dequantized weight, as bitsandbytes computes it; and the dequantized weight
// for prefill.
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/quant_kernels.h"

#include "kernel_util.cuh"
#include "tile_mma.cuh"

#include <cmath>
#include <limits>

namespace qsweep::cuda {
namespace {

using namespace detail;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 2;  // weight rows per warp, sharing each lane's activation loads
static_assert(kRows == 2, "row groups are GemvRows' pairs");
constexpr int kUnroll = 4;  // 16-byte pieces of each row a lane has in flight
constexpr int kMaxBatchTile = 16;
constexpr int kPrepThreads = 256;
// bitsandbytes' 1/127, for w = CB * SCB / 127.
constexpr float kInv127 = 7.874015718698502e-3f;

int64_t align16(int64_t n) { return (n + 15) / 16 * 16; }

// Where each piece of the scratch lives in the workspace.
struct Int8Scratch {
  float* rowmax;   // [M]: absmax of each activation row over its non-outlier elements
  uint8_t* mask;   // [in]: 1 for an outlier column
  int8_t* xq;      // [M, in]: activations quantized per row; outlier elements are 0
  void* xhat;      // [M, in] in x's dtype, the tensor-core path's activations (below)
};

Int8Scratch carve(uint8_t* base, int64_t m, int64_t in) {
  Int8Scratch s;
  s.rowmax = reinterpret_cast<float*>(base);
  s.mask = base + align16(4 * m);
  s.xq = reinterpret_cast<int8_t*>(s.mask + align16(in));
  s.xhat = s.xq + align16(m * in);
  return s;
}

__device__ __forceinline__ float block_max(float v, float* shared) {
  v = warp_max(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warp_max(lane < blockDim.x / 32 ? shared[lane] : 0.f);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

// Blocks [0, M) take one activation row each: its absmax over the elements below the threshold,
// then the row rounded to nearest even by it. The outlier columns (any element at or above the
// threshold) are marked one of two ways. Up to kColumnScanMaxRows rows, extra blocks scan a
// column each over all rows and write the whole mask: one launch and no memset node in every
// int8 projection of the decode graph (64 memsets cost a batch-1 step 0.2 ms). Above, the row
// blocks mark them into a mask zeroed before (every finder writes the same 1), so a prefill of
// 10^5 rows does not wait on a few blocks walking 10^5 rows one load after another.
constexpr int64_t kColumnScanMaxRows = 64;

template <typename T>
__global__ void __launch_bounds__(kPrepThreads)
    int8_prepare_kernel(const T* __restrict__ x, Int8Scratch s, int m_rows, int in, float threshold,
                        bool rows_mark) {
  wait_then_release();
  if (blockIdx.x >= m_rows) {
    const int k = (blockIdx.x - m_rows) * blockDim.x + threadIdx.x;
    if (k >= in) return;
    // No early exit: the rows' loads go out together instead of one after another.
    bool outlier = false;
#pragma unroll 8
    for (int m = 0; m < m_rows; ++m)
      outlier |= fabsf(to_float(x[static_cast<int64_t>(m) * in + k])) >= threshold;
    s.mask[k] = outlier;
    return;
  }
  __shared__ float shared[kPrepThreads / 32];
  const T* row = x + static_cast<int64_t>(blockIdx.x) * in;
  float mx = 0.f;
  for (int k = threadIdx.x; k < in; k += blockDim.x) {
    const float a = fabsf(to_float(row[k]));
    if (a < threshold) mx = fmaxf(mx, a);
    else if (rows_mark && a >= threshold) s.mask[k] = 1;  // NaN is neither
  }
  mx = block_max(mx, shared);
  const float scale = mx > 0.f ? 127.f / mx : 0.f;
  int8_t* q = s.xq + static_cast<int64_t>(blockIdx.x) * in;
  for (int k = threadIdx.x; k < in; k += blockDim.x) {
    const float v = to_float(row[k]);
    q[k] = fabsf(v) < threshold ? static_cast<int8_t>(max(-127, min(127, __float2int_rn(v * scale))))
                                : static_cast<int8_t>(0);
  }
  if (threadIdx.x == 0) s.rowmax[blockIdx.x] = mx;
}

// a + the dot product of 16 int8 pairs (x and w, four bytes a word), in int32.
__device__ __forceinline__ int dot16(int4 x, int4 w, int a) {
  a = __dp4a(x.x, w.x, a);
  a = __dp4a(x.y, w.y, a);
  a = __dp4a(x.z, w.z, a);
  return __dp4a(x.w, w.w, a);
}

// At one batch row, eight blocks per multiprocessor (64 registers a thread) keep the 1,024
// blocks of an 8192-row weight in one wave on an H200's 132 multiprocessors; the gate|up row
// pairs had taken that kernel to 72 registers, seven blocks, two waves and 11 % longer (kernel
// benchmark, session 13). More rows need the registers.
constexpr int kOneRowBlocksPerSm = 8;

// kSplit warps share kRows weight rows and split their 16-byte pieces: lane l of slice s reads
// pieces s * 32 + l, then every 32 * kSplit further (long rows, as in down_proj, would otherwise
// leave few warps with long serial loops). Pieces without an outlier column take four dp4a per
// row and activation row; the rare pieces with one go element by element, the outliers in
// float32 against the int8 weight (scaled at the end).
template <typename T, int kTile, int kSplit>
__global__ void __launch_bounds__(kThreads, kTile == 1 ? kOneRowBlocksPerSm : 1)
    int8_gemv_kernel(const int8_t* __restrict__ w, const float* __restrict__ scb, Int8Scratch s,
                     const T* __restrict__ x, T* __restrict__ y, int m_rows, int in,
                     GemvRows rows, bool pieces) {
  constexpr int kGroups = kWarps / kSplit;  // row groups per block
  __shared__ int ipartial[kWarps][kRows][kTile];
  __shared__ float fpartial[kWarps][kRows][kTile];
  const int first = blockIdx.x * kGroups;  // the block's first row group
  if (pieces && threadIdx.x < rows.runs()) {
    const int2 run = rows.run(first, kGroups, threadIdx.x);
    prefetch_l2(w + static_cast<int64_t>(run.x) * in, int64_t{run.y - run.x} * in);
  }
  wait_then_release();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, slice = warp % kSplit;
  const int group = first + warp / kSplit;
  int n_of[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) n_of[r] = rows.row(group, r);
  int iacc[kRows][kTile];
  float facc[kRows][kTile];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < kTile; ++m) iacc[r][m] = 0, facc[r][m] = 0.f;

  // Column k of the warp's rows, element by element, its bytes read from memory.
  auto element = [&](int k) {
    int8_t wk[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      wk[r] = n_of[r] < rows.out ? w[static_cast<int64_t>(n_of[r]) * in + k]
                                 : static_cast<int8_t>(0);
    const bool outlier = s.mask[k];
#pragma unroll
    for (int m = 0; m < kTile; ++m) {
      if (m >= m_rows) break;
      const int64_t at = static_cast<int64_t>(m) * in + k;
      if (outlier) {
        const float xv = to_float(x[at]);
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          facc[r][m] = fmaf(xv, static_cast<float>(wk[r]), facc[r][m]);
      } else {
        const int xv = s.xq[at];
#pragma unroll
        for (int r = 0; r < kRows; ++r) iacc[r][m] += xv * wk[r];
      }
    }
  };

  if (pieces) {
    const int npieces = in / 16;
    for (int p0 = slice * 32 + lane; p0 < npieces; p0 += 32 * kSplit * kUnroll) {
      // kUnroll pieces of each row and their mask words are loaded before the first is used: a
      // decode GEMV is a few DRAM round trips, and a loop that waited for each would be one per
      // piece.
      int4 wv[kUnroll][kRows];
      uint4 mk[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int p = p0 + 32 * kSplit * u;
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          wv[u][r] = n_of[r] < rows.out && p < npieces
                         ? __ldg(reinterpret_cast<const int4*>(
                                     w + static_cast<int64_t>(n_of[r]) * in) + p)
                         : make_int4(0, 0, 0, 0);
        mk[u] = p < npieces ? __ldg(reinterpret_cast<const uint4*>(s.mask) + p)
                            : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int p = p0 + 32 * kSplit * u;
        if (p >= npieces) break;
        if ((mk[u].x | mk[u].y | mk[u].z | mk[u].w) == 0) {
#pragma unroll
          for (int m = 0; m < kTile; ++m) {
            if (m >= m_rows) break;
            const int4 xv =
                __ldg(reinterpret_cast<const int4*>(s.xq + static_cast<int64_t>(m) * in) + p);
#pragma unroll
            for (int r = 0; r < kRows; ++r) iacc[r][m] = dot16(xv, wv[u][r], iacc[r][m]);
          }
        } else {
          // The rare piece with an outlier column reads its bytes again (from L1): indexing wv
          // by a loop variable would put all of wv in local memory, for every piece.
#pragma unroll 1
          for (int j = 0; j < 16; ++j) element(p * 16 + j);
        }
      }
    }
  } else {
    for (int k = slice * 32 + lane; k < in; k += 32 * kSplit) element(k);
  }

#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < kTile; ++m) {
      int a = iacc[r][m];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
      const float f = warp_sum(facc[r][m]);
      if (lane == 0) ipartial[warp][r][m] = a, fpartial[warp][r][m] = f;
    }
  __syncthreads();
  // Each output adds its row group's kSplit slices in a fixed order.
  store_gemv_rows<T, kGroups, kTile>(rows, first, m_rows, y, [&](int g, int r, int m, int n) {
    int a = 0;
    float f = 0.f;
#pragma unroll
    for (int sl = 0; sl < kSplit; ++sl)
      a += ipartial[g * kSplit + sl][r][m], f += fpartial[g * kSplit + sl][r][m];
    const float sw = __ldg(scb + n);
    return static_cast<float>(a) * (s.rowmax[m] * sw * (1.f / 16129.f)) + f * sw * kInv127;
  });
}

// The tensor-core path computes the same sum in one product: with x^ = xq * rowmax / 127 outside
// the outlier columns and x inside them, y = x^ . (CB * SCB / 127), which is the GEMV's int32 part
// plus its float part, here accumulated in fp32 from 16-bit operands.
template <typename T>
__global__ void int8_activations_kernel(const T* __restrict__ x, Int8Scratch s, int64_t in,
                                        int64_t numel) {
  wait_then_release();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= numel) return;
  const int64_t m = i / in, k = i % in;
  const float v = s.mask[k] ? to_float(x[i]) : s.xq[i] * (s.rowmax[m] * kInv127);
  static_cast<T*>(s.xhat)[i] = from_float<T>(v);
}

// The weight's view for tile_mma.cuh: a tile row of 128 channels is eight 16-byte pieces; thread
// i takes pieces i + 128 u (u < 4), so a warp reads 128 contiguous bytes of each of 4 rows.
template <typename T>
struct Int8TileLoader {
  const int8_t* weight;
  const float* scb;
  int in, out;

  static constexpr int kPieces = 4;
  struct Shared {};
  struct Raw {
    int4 q[kPieces];
    float scb[kPieces];
  };

  __device__ void stage(Shared&) const {}

  __device__ void prefetch(int n0, int k_begin, int k_end) const {
    const int n = n0 + threadIdx.x;
    if (threadIdx.x < kMmaTileN && n < out && k_begin < k_end)
      prefetch_l2(weight + static_cast<int64_t>(n) * in + k_begin, k_end - k_begin);
  }

  __device__ void load(const Shared&, int n0, int k0, int k_end, Raw& raw) const {
#pragma unroll
    for (int u = 0; u < kPieces; ++u) {
      const int i = threadIdx.x + u * kMmaThreads;
      const int n = n0 + i / 8, k = k0 + (i % 8) * 16;
      const bool live = n < out && k < k_end;
      raw.q[u] = live ? __ldg(reinterpret_cast<const int4*>(weight + static_cast<int64_t>(n) * in + k))
                      : make_int4(0, 0, 0, 0);
      raw.scb[u] = live ? __ldg(scb + n) : 0.f;  // scaled in store(): a use here would wait
    }
  }

  __device__ void resolve(const Shared&, int, Raw&) const {}

  __device__ void store(const Shared&, const Raw& raw, int, int, int, T* ws) const {
#pragma unroll
    for (int u = 0; u < kPieces; ++u) {
      const int i = threadIdx.x + u * kMmaThreads;
      const int8_t* codes = reinterpret_cast<const int8_t*>(&raw.q[u]);
      const float scale = raw.scb[u] * kInv127;
      __align__(16) T v[16];
#pragma unroll
      for (int j = 0; j < 16; ++j) v[j] = from_float<T>(codes[j] * scale);
      // A row's pieces p and p + 4 start 64 bytes apart, on the same bank groups: pieces 4-7
      // write their second half first, so a quarter-warp's eight 16-byte stores meet eight
      // bank groups instead of four twice.
      const bool second_first = i & 4;
      const uint4 lo = reinterpret_cast<const uint4*>(v)[0], hi = reinterpret_cast<const uint4*>(v)[1];
      uint4* dst = reinterpret_cast<uint4*>(ws + (i / 8) * kMmaLd + (i % 8) * 16);
      dst[second_first] = second_first ? hi : lo;
      dst[!second_first] = second_first ? lo : hi;
    }
  }
};

template <typename T>
__global__ void int8_dequant_kernel(const int8_t* __restrict__ w, const float* __restrict__ scb,
                                    T* __restrict__ out, int64_t in, int64_t numel) {
  wait_then_release();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= numel) return;
  out[i] = from_float<T>(static_cast<float>(w[i]) * __ldg(scb + i / in) * kInv127);
}

void check_int8(const at::Tensor& weight, const at::Tensor& row_absmax) {
  TORCH_CHECK(weight.defined() && weight.is_cuda() && weight.scalar_type() == at::kChar &&
                  weight.dim() == 2 && weight.is_contiguous(),
              "int8: weight must be a contiguous int8 CUDA tensor [out, in]");
  TORCH_CHECK(row_absmax.defined() && row_absmax.is_cuda() &&
                  row_absmax.scalar_type() == at::kFloat && row_absmax.is_contiguous() &&
                  row_absmax.numel() == weight.size(0),
              "int8: row_absmax must be a contiguous float32 CUDA tensor [out = ", weight.size(0),
              "]");
  TORCH_CHECK(weight.get_device() == row_absmax.get_device(),
              "int8: weight and row_absmax must be on one device");
  TORCH_CHECK(weight.size(0) < (1ll << 31) && weight.size(1) < (1ll << 31),
              "int8: out and in must fit int32");
}

// rowmax, mask and xq; x^ comes after them where a call needs it.
int64_t scratch_bytes(int64_t m, int64_t in) { return align16(4 * m) + align16(in) + align16(m * in); }

float outlier_threshold(double threshold) {
  return threshold > 0 ? static_cast<float>(threshold) : std::numeric_limits<float>::infinity();
}

template <typename T>
void prepare_activations(const T* x, const Int8Scratch& s, int64_t m, int64_t in, float threshold,
                         cudaStream_t stream) {
  const bool scan_columns = m <= kColumnScanMaxRows;
  if (!scan_columns) QSWEEP_CUDA_CHECK(cudaMemsetAsync(s.mask, 0, static_cast<size_t>(in), stream));
  const int64_t column_blocks = scan_columns ? (in + kPrepThreads - 1) / kPrepThreads : 0;
  launch({dim3(static_cast<unsigned>(m + column_blocks)), dim3(kPrepThreads), 0, stream},
         int8_prepare_kernel<T>, x, s, static_cast<int>(m), static_cast<int>(in), threshold,
         !scan_columns);
}

template <typename T>
void write_activations(const T* x, const Int8Scratch& s, int64_t m, int64_t in, cudaStream_t stream) {
  constexpr int kBlock = 256;
  const int64_t numel = m * in;
  launch({dim3(static_cast<unsigned>((numel + kBlock - 1) / kBlock)), dim3(kBlock), 0, stream},
         int8_activations_kernel<T>, x, s, in, numel);
}

void check_activations(const at::Tensor& x, double threshold, const char* what) {
  TORCH_CHECK(x.defined() && x.is_cuda() && x.dim() == 2 && x.is_contiguous(), what,
              ": x must be a contiguous 2-D CUDA tensor [M, in]");
  TORCH_CHECK(threshold >= 0, what, ": threshold must be >= 0 (0: no outliers), got ", threshold);
  TORCH_CHECK(x.size(0) < (1ll << 31) - 65536 && x.size(1) < (1ll << 31), what, ": x too large");
}

// The caller's workspace, checked, or a new one of int8_workspace_bytes(M, in).
at::Tensor scratch_for(const at::Tensor& workspace, const at::Tensor& x, int64_t in) {
  const int64_t need = int8_workspace_bytes(x.size(0), in);
  if (!workspace.defined()) return at::empty({need}, x.options().dtype(at::kByte));
  TORCH_CHECK(workspace.is_cuda() && workspace.scalar_type() == at::kByte &&
                  workspace.is_contiguous() && workspace.numel() >= need &&
                  workspace.get_device() == x.get_device() && aligned16(workspace.data_ptr()),
              "int8_matmul: workspace must be a contiguous, 16-byte aligned uint8 CUDA tensor of "
              "at least int8_workspace_bytes(M, in) = ", need, " bytes on x's device");
  return workspace;
}

// The GEMV over prepared activations, kMaxBatchTile rows at a time (y [M, rows.gate or out]).
template <typename T>
void launch_int8_gemv(const T* x, const at::Tensor& weight, const at::Tensor& row_absmax,
                      const Int8Scratch& s, int64_t m, const GemvRows& rows_of_w, bool pieces,
                      T* y, cudaStream_t stream) {
  const int64_t in = weight.size(1);
  const int64_t y_cols = rows_of_w.gate ? rows_of_w.gate : rows_of_w.out;
  const int split = pieces ? warps_per_row(in / 16, kUnroll) : 1;
  const Launch config{dim3(static_cast<unsigned>(rows_of_w.blocks(kWarps / split))),
                      dim3(kThreads), 0, stream};
  for (int64_t m0 = 0; m0 < m; m0 += kMaxBatchTile) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxBatchTile, m - m0));
    Int8Scratch part = s;
    part.rowmax += m0;
    part.xq += m0 * in;
    QSWEEP_DISPATCH_BATCH_TILE(rows, [&] {
      with_constant<1, 2, 4>(split, [&](auto split_c) {
        launch(config, int8_gemv_kernel<T, kTile, decltype(split_c)::value>,
               weight.data_ptr<int8_t>(), row_absmax.data_ptr<float>(), part, x + m0 * in,
               y + m0 * y_cols, rows, static_cast<int>(in), rows_of_w, pieces);
      });
    });
  }
}

}  // namespace

int64_t int8_workspace_bytes(int64_t m, int64_t in) { return scratch_bytes(m, in) + 2 * m * in; }

at::Tensor int8_activations(const at::Tensor& x, double threshold) {
  check_activations(x, threshold, "int8_activations");
  const int64_t m = x.size(0), in = x.size(1);
  at::Tensor xhat = at::empty_like(x);
  if (xhat.numel() == 0) return xhat;
  const at::Tensor scratch = at::empty({scratch_bytes(m, in)}, x.options().dtype(at::kByte));
  Int8Scratch s = carve(scratch.data_ptr<uint8_t>(), m, in);
  s.xhat = xhat.data_ptr();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "int8_activations", [&] {
    const auto* xp = reinterpret_cast<const scalar_t*>(x.data_ptr());
    prepare_activations(xp, s, m, in, outlier_threshold(threshold), stream);
    write_activations(xp, s, m, in, stream);
  });
  return xhat;
}

at::Tensor int8_matmul(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& row_absmax,
                       double threshold, const at::Tensor& workspace, MatmulPath path,
                       const GemvIo& io) {
  check_int8(weight, row_absmax);
  const int64_t in = weight.size(1), out = weight.size(0);
  check_activations(x, threshold, "int8_matmul");
  TORCH_CHECK(x.size(1) == in, "int8_matmul: x must be [M, in = ", in, "], got ", x.sizes());
  TORCH_CHECK(x.get_device() == weight.get_device(), "int8_matmul: x and weight must be on one device");
  const int64_t m = x.size(0);
  check_gemv_io(io, x, out, "int8_matmul");
  const bool gate_up = io.output == GemvOutput::silu_gate_up;
  TORCH_CHECK(!gate_up || out % 2 == 0,
              "int8_matmul: a gate|up weight has an even number of rows, got ", out);
  // The activations' preparation reads x before the GEMV does: the norm comes before both.
  if (io.is_normed())
    return int8_matmul(normed_rows(x, io), weight, row_absmax, threshold, workspace, path,
                       io.without_norm());
  const bool pieces = in % 16 == 0 && aligned16(weight.data_ptr());
  const bool tile = in % 32 == 0 && pieces && use_tensor_cores(path, m);
  // Only the GEMV has the epilogues; the tile kernel's product takes the kernels of gemv_io.h.
  if ((gate_up || io.adds()) && tile)
    return finish_output(int8_matmul(x, weight, row_absmax, threshold, workspace, path), io);
  at::Tensor y = io.adds() ? io.residual : at::empty({m, gate_up ? out / 2 : out}, x.options());
  if (m == 0 || out == 0) return y;
  if (in == 0) return io.adds() ? y : y.zero_();

  const at::Tensor scratch = scratch_for(workspace, x, in);
  const Int8Scratch s = carve(scratch.data_ptr<uint8_t>(), m, in);
  const float t = outlier_threshold(threshold);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "int8_matmul", [&] {
    const auto* xp = reinterpret_cast<const scalar_t*>(x.data_ptr());
    prepare_activations(xp, s, m, in, t, stream);
    if (tile) {
      write_activations(xp, s, m, in, stream);
      const Int8TileLoader<scalar_t> loader{weight.data_ptr<int8_t>(), row_absmax.data_ptr<float>(),
                                            static_cast<int>(in), static_cast<int>(out)};
      launch_tile_mma(static_cast<const scalar_t*>(s.xhat), reinterpret_cast<scalar_t*>(y.data_ptr()),
                      m, in, out, loader, stream);
      return;
    }
    launch_int8_gemv(xp, weight, row_absmax, s, m, GemvRows::of(static_cast<int>(out), io),
                     pieces, reinterpret_cast<scalar_t*>(y.data_ptr()), stream);
  });
  return y;
}

at::Tensor int8_dequantize(const at::Tensor& weight, const at::Tensor& row_absmax,
                           at::ScalarType dtype) {
  check_int8(weight, row_absmax);
  at::Tensor out = at::empty(weight.sizes(), weight.options().dtype(dtype));
  const int64_t numel = out.numel();
  if (numel == 0) return out;
  constexpr int kBlock = 256;
  const Launch config{dim3(static_cast<unsigned>((numel + kBlock - 1) / kBlock)), dim3(kBlock), 0,
                      at::cuda::getCurrentCUDAStream()};
  QSWEEP_DISPATCH_HALF_TYPES(dtype, "int8_dequantize", [&] {
    launch(config, int8_dequant_kernel<scalar_t>, weight.data_ptr<int8_t>(),
           row_absmax.data_ptr<float>(), reinterpret_cast<scalar_t*>(out.data_ptr()),
           weight.size(1), numel);
  });
  return out;
}

}  // namespace qsweep::cuda
