// The dense 16-bit GEMV of decode (qsweep/kernels/dense_gemv.h).
#include "qsweep/kernels/dense_gemv.h"

#include "kernel_util.cuh"
#include "rms_norm_row.cuh"

namespace qsweep::cuda {
namespace {

using namespace detail;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 2;    // weight rows per warp, sharing each lane's activation loads
static_assert(kRows == 2, "row groups are GemvRows' pairs");
constexpr int kUnroll = 4;  // 16-byte pieces of each row a lane has in flight

// kSplit warps share kRows rows and split their pieces (8 elements, 16 bytes) between them:
// lane l of slice s takes pieces s * 32 + l, then every 32 * kSplit further, kUnroll at a time.
// kNormed: the block multiplies RMSNorm(x) with `norm` (gemv_input_rows).
template <typename T, int kTile, int kSplit, bool kNormed>
__global__ void __launch_bounds__(kThreads)
    dense_gemv_kernel(const uint4* __restrict__ w, int64_t w_ld, const T* __restrict__ x,
                      const T* __restrict__ norm, float eps, T* __restrict__ y, int m_rows,
                      int in, GemvRows rows) {
  constexpr int kGroups = kWarps / kSplit;
  __shared__ float partial[kWarps][kRows][kTile];
  const int pieces = in / 8;
  const int first = blockIdx.x * kGroups, t = threadIdx.x;  // the block's first row group
  if (t < kGroups * kRows) {
    const int n = rows.row(first + t / kRows, t % kRows);
    if (n < rows.out) prefetch_l2(w + n * w_ld, int64_t{pieces} * 16);
  }
  wait_then_release();
  const T* xs = gemv_input_rows<kNormed, T, kThreads>(x, norm, eps, m_rows, in);
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
    uint4 wq[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int p = p0 + u * 32 * kSplit;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int n = n_of[r];
        wq[u][r] = n < rows.out && p < pieces ? __ldg(w + n * w_ld + p) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int p = p0 + u * 32 * kSplit;
      if (p >= pieces) break;
      float wf[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) unpack8<T>(wq[u][r], wf[r]);
#pragma unroll
      for (int m = 0; m < kTile; ++m) {
        if (m >= m_rows) break;
        float xf[8];
        unpack8<T>(load_input16<kNormed>(xs + static_cast<int64_t>(m) * in + p * 8), xf);
#pragma unroll
        for (int r = 0; r < kRows; ++r)
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[r][m] = fmaf(xf[i], wf[r][i], acc[r][m]);
      }
    }
  }
  store_split_sums<T, kWarps, kSplit>(acc, partial, warp, lane, rows, first, m_rows, y);
}

}  // namespace

bool dense_gemv_supported(const at::Tensor& x, const at::Tensor& w) {
  const bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  return x.defined() && w.defined() && x.is_cuda() && w.is_cuda() && half &&
         w.scalar_type() == x.scalar_type() && x.dim() == 2 && w.dim() == 2 && x.is_contiguous() &&
         x.size(0) <= kDenseGemvMaxRows && x.size(1) == w.size(1) && w.size(1) % 8 == 0 &&
         w.stride(1) == 1 && w.stride(0) % 8 == 0 && w.size(0) < (1ll << 31) &&
         w.size(1) < (1ll << 31) && x.get_device() == w.get_device() && aligned16(x.data_ptr()) &&
         aligned16(w.data_ptr());
}

at::Tensor dense_gemv(const at::Tensor& x, const at::Tensor& w, const GemvIo& io) {
  TORCH_CHECK(dense_gemv_supported(x, w),
              "dense_gemv: x must be a contiguous [M <= ", kDenseGemvMaxRows,
              ", in] and w an [out, in] CUDA tensor with contiguous rows, both float16 or both "
              "bfloat16, in and w's row stride multiples of 8, both 16-byte aligned");
  const int64_t m = x.size(0), in = x.size(1), out = w.size(0);
  check_gemv_io(io, x, out, "dense_gemv");
  const bool gate_up = io.output == GemvOutput::silu_gate_up;
  TORCH_CHECK(!gate_up || out % 2 == 0,
              "dense_gemv: a gate|up weight has an even number of rows, got ", out);
  bool normed = io.is_normed();
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "dense_gemv", [&] {
    normed = normed && gemv_norms<scalar_t>(m, in, x.data_ptr(), io.norm_weight.data_ptr());
  });
  if (io.is_normed() && !normed) return dense_gemv(normed_rows(x, io), w, io.without_norm());
  at::Tensor y = io.adds() ? io.residual : at::empty({m, gate_up ? out / 2 : out}, x.options());
  if (m == 0 || out == 0) return y;
  if (in == 0) return io.adds() ? y : y.zero_();
  const int split = warps_per_row(in / 8, kUnroll);
  const GemvRows rows = GemvRows::of(static_cast<int>(out), io);
  static_assert(kDenseGemvMaxRows == 4, "the batch tiles below are 1, 2 and 4 rows");
  const int tile = m <= 1 ? 1 : m <= 2 ? 2 : 4;
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "dense_gemv", [&] {
    const Launch config{dim3(static_cast<unsigned>(rows.blocks(kWarps / split))), dim3(kThreads),
                        gemv_input_bytes<scalar_t>(normed, m, in),
                        at::cuda::getCurrentCUDAStream()};
    const auto gemv = [&](auto tile_c, auto split_c, auto normed_c) {
      launch(config,
             dense_gemv_kernel<scalar_t, decltype(tile_c)::value, decltype(split_c)::value,
                               decltype(normed_c)::value>,
             reinterpret_cast<const uint4*>(w.data_ptr()), w.stride(0) / 8,
             reinterpret_cast<const scalar_t*>(x.data_ptr()),
             normed ? reinterpret_cast<const scalar_t*>(io.norm_weight.data_ptr()) : nullptr,
             static_cast<float>(io.norm_eps), reinterpret_cast<scalar_t*>(y.data_ptr()),
             static_cast<int>(m), static_cast<int>(in), rows);
    };
    with_constant<1, 2, 4>(split, [&](auto split_c) {
      if (normed)  // one row (gemv_norms)
        gemv(std::integral_constant<int, 1>{}, split_c, std::true_type{});
      else
        with_constant<1, 2, 4>(tile, [&](auto tile_c) { gemv(tile_c, split_c, std::false_type{}); });
    });
  });
  return y;
}

}  // namespace qsweep::cuda
