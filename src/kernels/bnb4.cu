// bitsandbytes 4-bit weights (NF4 or FP4, with or without double quantization): the fused
// dequantize-GEMV for decode and the dequantize-to-buffer for prefill.
#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/quant_kernels.h"

#include "kernel_util.cuh"

namespace qsweep::cuda {
namespace {

using namespace detail;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
// Rows per warp: the activations a lane loads for its 32 columns serve this many weight rows.
constexpr int kRows = 2;
constexpr int kMaxBatchTile = 16;

// The absmax of one block of `blocksize` elements, plain or double-quantized.
struct Absmax {
  const float* plain;     // [blocks], or null with double quantization
  const uint8_t* codes;   // [blocks]
  const float* scale2;    // [ceil(blocks / 256)]
  const float* code2;     // [256]
  float offset;

  __device__ __forceinline__ float operator()(int64_t block) const {
    if (plain) return __ldg(plain + block);
    return __ldg(code2 + __ldg(codes + block)) * __ldg(scale2 + (block >> 8)) + offset;
  }
};

// Rows whose length is a multiple of 32 start on a 16-byte boundary, and 16 bytes hold 32 codes
// of one absmax block (blocksize is a multiple of 32), so each lane reads whole 16-byte pieces:
// lane l takes pieces l, l + 32, ... of kRows rows, the warp reading 512 contiguous bytes of
// each row per step.
template <typename T, int kTile>
__global__ void __launch_bounds__(kThreads)
    bnb4_gemv_kernel(const uint4* __restrict__ packed, const float* __restrict__ code, Absmax absmax,
                     int64_t blocksize, const T* __restrict__ x, T* __restrict__ y, int m_rows,
                     int in, int out) {
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = code[threadIdx.x];
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n0 = (blockIdx.x * kWarps + warp) * kRows;
  if (n0 >= out) return;
  const int pieces = in / 32;

  float acc[kRows][kTile];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < kTile; ++m) acc[r][m] = 0.f;

  for (int p = lane; p < pieces; p += 32) {
    uint4 wq[kRows];
    float am[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int n = n0 + r;
      if (n < out) {
        wq[r] = __ldg(packed + static_cast<int64_t>(n) * pieces + p);
        am[r] = absmax((static_cast<int64_t>(n) * in + p * 32) / blocksize);
      } else {
        wq[r] = make_uint4(0, 0, 0, 0);
        am[r] = 0.f;
      }
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      float wv[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const uint32_t word = s == 0 ? wq[r].x : s == 1 ? wq[r].y : s == 2 ? wq[r].z : wq[r].w;
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const uint32_t byte = (word >> (8 * b)) & 0xffu;
          wv[r][2 * b] = lut[byte >> 4] * am[r];
          wv[r][2 * b + 1] = lut[byte & 0xfu] * am[r];
        }
      }
#pragma unroll
      for (int m = 0; m < kTile; ++m) {
        if (m >= m_rows) break;
        float xf[8];
        unpack8<T>(__ldg(reinterpret_cast<const uint4*>(x + static_cast<int64_t>(m) * in + p * 32 +
                                                         s * 8)),
                   xf);
#pragma unroll
        for (int r = 0; r < kRows; ++r)
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[r][m] = fmaf(xf[i], wv[r][i], acc[r][m]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < kTile; ++m) {
      const float v = warp_sum(acc[r][m]);
      if (lane == 0 && m < m_rows && n0 + r < out)
        y[static_cast<int64_t>(m) * out + n0 + r] = from_float<T>(v);
    }
}

// Any shape: one warp per row, one element per lane and step, rows starting mid-byte included.
template <typename T, int kTile>
__global__ void __launch_bounds__(kThreads)
    bnb4_gemv_any_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ code,
                         Absmax absmax, int64_t blocksize, const T* __restrict__ x,
                         T* __restrict__ y, int m_rows, int in, int out) {
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = code[threadIdx.x];
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + warp;
  if (n >= out) return;
  float acc[kTile];
#pragma unroll
  for (int m = 0; m < kTile; ++m) acc[m] = 0.f;
  for (int k = lane; k < in; k += 32) {
    const int64_t e = static_cast<int64_t>(n) * in + k;
    const uint32_t byte = __ldg(packed + (e >> 1));
    const float w = lut[(e & 1) ? byte & 0xfu : byte >> 4] * absmax(e / blocksize);
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
                                    int64_t blocksize, T* __restrict__ w, int64_t numel) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t e = 2 * i;
  if (e >= numel) return;
  const uint32_t byte = __ldg(packed + i);
  const float am = absmax(e / blocksize);  // e and e + 1 share a block: blocksize is even
  w[e] = from_float<T>(__ldg(code + (byte >> 4)) * am);
  if (e + 1 < numel) w[e + 1] = from_float<T>(__ldg(code + (byte & 0xfu)) * am);
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
    return {w.absmax.data_ptr<float>(), nullptr, nullptr, nullptr, 0.f};
  }
  TORCH_CHECK(w.qabsmax.defined() && w.qabsmax.is_cuda() && w.qabsmax.scalar_type() == at::kByte &&
                  w.qabsmax.numel() == blocks && w.qabsmax.is_contiguous(),
              "bnb4: qabsmax must be a contiguous uint8 CUDA tensor of ", blocks,
              " values (one per block) when absmax is undefined");
  check_float(w.absmax2, (blocks + 255) / 256, "absmax2");
  check_float(w.code2, 256, "code2");
  return {nullptr, w.qabsmax.data_ptr<uint8_t>(), w.absmax2.data_ptr<float>(),
          w.code2.data_ptr<float>(), static_cast<float>(w.offset)};
}

}  // namespace

at::Tensor bnb4_matmul(const at::Tensor& x, const Bnb4Tensors& w) {
  const Absmax absmax = check_bnb4(w);
  TORCH_CHECK(x.defined() && x.is_cuda() && x.dim() == 2 && x.is_contiguous() &&
                  x.size(1) == w.in,
              "bnb4_matmul: x must be a contiguous 2-D CUDA tensor [M, in = ", w.in, "]");
  TORCH_CHECK(x.get_device() == w.packed.get_device(),
              "bnb4_matmul: x and packed must be on one device");
  TORCH_CHECK(w.in < (1ll << 31) && w.out < (1ll << 31), "bnb4_matmul: in and out must fit int32");
  const int64_t m = x.size(0);
  at::Tensor y = at::empty({m, w.out}, x.options());
  if (m == 0 || w.out == 0) return y;
  if (w.in == 0) return y.zero_();
  const bool pieces = w.in % 32 == 0 && w.blocksize % 32 == 0 &&
                      reinterpret_cast<uintptr_t>(w.packed.data_ptr()) % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0;
  const int64_t rows_per_block = pieces ? kWarps * kRows : kWarps;
  const dim3 grid(static_cast<unsigned>((w.out + rows_per_block - 1) / rows_per_block));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_HALF_TYPES(x.scalar_type(), "bnb4_matmul", [&] {
    for (int64_t m0 = 0; m0 < m; m0 += kMaxBatchTile) {
      const int rows = static_cast<int>(std::min<int64_t>(kMaxBatchTile, m - m0));
      const auto* xp = reinterpret_cast<const scalar_t*>(x.data_ptr()) + m0 * w.in;
      auto* yp = reinterpret_cast<scalar_t*>(y.data_ptr()) + m0 * w.out;
      QSWEEP_DISPATCH_BATCH_TILE(rows, [&] {
        if (pieces)
          bnb4_gemv_kernel<scalar_t, kTile><<<grid, kThreads, 0, stream>>>(
              reinterpret_cast<const uint4*>(w.packed.data_ptr()), w.code.data_ptr<float>(),
              absmax, w.blocksize, xp, yp, rows, static_cast<int>(w.in), static_cast<int>(w.out));
        else
          bnb4_gemv_any_kernel<scalar_t, kTile><<<grid, kThreads, 0, stream>>>(
              w.packed.data_ptr<uint8_t>(), w.code.data_ptr<float>(), absmax, w.blocksize, xp, yp,
              rows, static_cast<int>(w.in), static_cast<int>(w.out));
        QSWEEP_CUDA_CHECK(cudaGetLastError());
      });
    }
  });
  return y;
}

at::Tensor bnb4_dequantize(const Bnb4Tensors& w, at::ScalarType dtype) {
  const Absmax absmax = check_bnb4(w);
  at::Tensor out = at::empty({w.out, w.in}, w.packed.options().dtype(dtype));
  const int64_t numel = out.numel();
  if (numel == 0) return out;
  constexpr int kBlock = 256;
  const int64_t bytes = (numel + 1) / 2;
  const dim3 grid(static_cast<unsigned>((bytes + kBlock - 1) / kBlock));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  QSWEEP_DISPATCH_HALF_TYPES(dtype, "bnb4_dequantize", [&] {
    bnb4_dequant_kernel<scalar_t><<<grid, kBlock, 0, stream>>>(
        w.packed.data_ptr<uint8_t>(), w.code.data_ptr<float>(), absmax, w.blocksize,
        reinterpret_cast<scalar_t*>(out.data_ptr()), numel);
    QSWEEP_CUDA_CHECK(cudaGetLastError());
  });
  return out;
}

}  // namespace qsweep::cuda
