#pragma once
// transformers' RMSNorm of one row by one block: in the add_rms_norm and decode_inputs kernels
// (decode_ops.cu), and as the prologue of the GEMVs that take RMSNorm(x) for their input
// (qsweep/kernels/gemv_io.h). Both sum the squares in one order, that of kNormThreads lanes,
// each over its own 16-byte pieces in turn, then across each warp's lanes and across warps; a
// block of fewer threads holds several lanes per thread. So the GEMV multiplies the very bits
// add_rms_norm would have written.
#include "kernel_util.cuh"

namespace qsweep::cuda::detail {

constexpr int kNormThreads = 256;

// The sum over kNormThreads lanes of their values, which a block of kNormThreads / kPer
// threads holds kPer each (thread t holds lanes t, t + blockDim.x, ...); every thread gets it.
// scratch: kNormThreads / 32 floats.
template <int kPer>
__device__ float norm_lanes_sum(const float (&v)[kPer], float* scratch) {
  constexpr int kBlockWarps = kNormThreads / 32 / kPer;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const float s = warp_sum(v[k]);
    if (lane == 0) scratch[warp + k * kBlockWarps] = s;
  }
  __syncthreads();
  const float total = warp_sum(lane < kNormThreads / 32 ? scratch[lane] : 0.f);
  __syncthreads();  // scratch may be reused by the caller
  return total;
}

// One row's sum = in + delta (rounded to T, as `x = x + delta`; delta may be null), written to
// sum_row where given, then transformers' RMSNorm of the sum into out, by a block of
// kNormThreads / kPer threads. kChunks 0 (kPer 1 only): element by element in two passes, any
// row. kChunks 1 to 4: rows of up to kChunks x kNormThreads x 16 bytes (8192 bf16 elements)
// whose pieces each lane keeps in registers, so the row, delta and weight are read once, with
// 16-byte loads issued together, instead of in two passes whose loads wait on each other (a
// batch-1 step runs this on one multiprocessor: latency is its cost). Lane l's pieces are
// c * kNormThreads + l. The mean is taken as libtorch's reduction takes it: the sum times 1 / n.
template <typename T, int kChunks, int kPer = 1>
__device__ void add_norm_row(const T* in, const T* delta, T* sum_row, const T* weight, T* out,
                             int hidden, float eps, float* scratch) {
  if constexpr (kChunks == 0) {
    static_assert(kPer == 1, "the two-pass row takes a block of kNormThreads");
    float squares[1] = {0.f};
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
      float v = to_float(in[i]);
      if (delta) v = rounded<T>(v + to_float(delta[i]));
      if (sum_row) sum_row[i] = from_float<T>(v);
      squares[0] += v * v;
    }
    const float inv = rsqrtf(norm_lanes_sum(squares, scratch) * (1.0f / hidden) + eps);
    const T* sum = sum_row ? sum_row : in;  // this thread's own elements, written above
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
      out[i] = from_float<T>(to_float(weight[i]) * rounded<T>(to_float(sum[i]) * inv));
  } else {
    constexpr int kVec = 16 / sizeof(T);
    constexpr int kThreads = kNormThreads / kPer;
    const auto first = [](int k, int c) {
      return (c * kNormThreads + k * kThreads + static_cast<int>(threadIdx.x)) * kVec;
    };
    uint4 r[kPer][kChunks], d[kPer][kChunks], w[kPer][kChunks];
#pragma unroll
    for (int k = 0; k < kPer; ++k)
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int i = first(k, c);
        const bool live = i < hidden;
        r[k][c] = live ? *reinterpret_cast<const uint4*>(in + i) : make_uint4(0, 0, 0, 0);
        d[k][c] = live && delta ? *reinterpret_cast<const uint4*>(delta + i) : make_uint4(0, 0, 0, 0);
        w[k][c] = live ? *reinterpret_cast<const uint4*>(weight + i) : make_uint4(0, 0, 0, 0);
      }
    float squares[kPer];
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      squares[k] = 0.f;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        T* h = reinterpret_cast<T*>(&r[k][c]);
        const T* dv = reinterpret_cast<const T*>(&d[k][c]);
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          float v = to_float(h[j]);
          if (delta) {
            v = rounded<T>(v + to_float(dv[j]));
            h[j] = from_float<T>(v);
          }
          squares[k] += v * v;  // elements past `hidden` are 0
        }
        if (sum_row && first(k, c) < hidden) *reinterpret_cast<uint4*>(sum_row + first(k, c)) = r[k][c];
      }
    }
    const float inv = rsqrtf(norm_lanes_sum(squares, scratch) * (1.0f / hidden) + eps);
#pragma unroll
    for (int k = 0; k < kPer; ++k)
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int i = first(k, c);
        if (i >= hidden) continue;
        const T* h = reinterpret_cast<const T*>(&r[k][c]);
        const T* wv = reinterpret_cast<const T*>(&w[k][c]);
        uint4 o;
        T* ov = reinterpret_cast<T*>(&o);
#pragma unroll
        for (int j = 0; j < kVec; ++j)
          ov[j] = from_float<T>(to_float(wv[j]) * rounded<T>(to_float(h[j]) * inv));
        *reinterpret_cast<uint4*>(out + i) = o;
      }
  }
}

// The register variant's pieces per lane for a row of `hidden` T (1 to 4 fit; 0: none does).
template <typename T>
__host__ __device__ constexpr int norm_chunks(int64_t hidden) {
  constexpr int64_t kVec = 16 / sizeof(T);
  const int64_t chunks = (hidden + kNormThreads * kVec - 1) / (kNormThreads * kVec);
  return hidden % kVec == 0 && chunks <= 4 ? static_cast<int>(chunks) : 0;
}

// The largest row a GEMV prologue norms: two pieces per lane, Llama's hidden sizes to 4,096 in
// 16 bits.
constexpr int kGemvNormMaxChunks = 2;

// Whether a GEMV norms its input itself: one row (a batch-1 decode step's; more rows take
// add_rms_norm before the GEMV) of `cols` T, the row and the norm weight 16-byte aligned.
template <typename T>
bool gemv_norms(int64_t m_rows, int64_t cols, const void* x, const void* weight) {
  const int chunks = norm_chunks<T>(cols);
  return m_rows == 1 && chunks >= 1 && chunks <= kGemvNormMaxChunks && aligned16(x) &&
         aligned16(weight);
}

// 16 bytes of a GEMV's input rows: from global memory through the read-only path, or
// (kNormed) from wherever gemv_input_rows put them.
template <bool kNormed>
__device__ __forceinline__ uint4 load_input16(const void* p) {
  if constexpr (kNormed) return *static_cast<const uint4*>(p);
  return __ldg(static_cast<const uint4*>(p));
}

// The rows a GEMV block multiplies, read after its wait: x [m_rows, cols] itself, or (kNormed,
// gemv_norms() true) the RMSNorm of each row with `norm`, normed by the whole block as
// add_rms_norm norms it into the dynamic shared memory, which the launch sizes for it
// (m_rows * cols T).
template <bool kNormed, typename T, int kThreads>
__device__ const T* gemv_input_rows(const T* x, const T* norm, float eps, int m_rows, int cols) {
  if constexpr (!kNormed) {
    return x;
  } else {
    static_assert(kNormThreads % kThreads == 0, "a thread holds whole norm lanes");
    constexpr int kPer = kNormThreads / kThreads;
    extern __shared__ __align__(16) unsigned char gemv_staged[];
    __shared__ float scratch[kNormThreads / 32];
    T* staged = reinterpret_cast<T*>(gemv_staged);
    const bool one = norm_chunks<T>(cols) == 1;
    for (int m = 0; m < m_rows; ++m) {
      const int64_t at = static_cast<int64_t>(m) * cols;
      if (one)
        add_norm_row<T, 1, kPer>(x + at, nullptr, nullptr, norm, staged + at, cols, eps, scratch);
      else
        add_norm_row<T, 2, kPer>(x + at, nullptr, nullptr, norm, staged + at, cols, eps, scratch);
    }
    __syncthreads();
    return staged;
  }
}

// The dynamic shared memory of a GEMV launch that norms m_rows rows of `cols` T (0 without).
template <typename T>
size_t gemv_input_bytes(bool normed, int64_t m_rows, int64_t cols) {
  return normed ? static_cast<size_t>(m_rows * cols) * sizeof(T) : 0;
}

}  // namespace qsweep::cuda::detail
