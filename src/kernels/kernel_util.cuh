#pragma once
// Helpers shared by the kernels: 16-bit float conversion, bit fields, warp sums, the launch
// every kernel goes through (overlapped with the kernel before it, and the rule that makes that
// safe), and the dtype and compile-time-constant dispatch and layout checks of their host
// functions.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>

#include "qsweep/kernels/cuda_check.h"
#include "qsweep/kernels/gemv_io.h"
#include "qsweep/kernels/launch_overlap.h"

#include <cstdint>
#include <type_traits>
#include <utility>

namespace qsweep::cuda::detail {

__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(float v) { return v; }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }

// The value a libtorch operation in dtype T leaves: computed in float32, rounded once.
template <typename T> __device__ __forceinline__ float rounded(float v) {
  return to_float(from_float<T>(v));
}

// dtype(dtype(silu(gate)) * up) for gate and up already in T, as at::silu(gate) * up rounds.
template <typename T> __device__ __forceinline__ T silu_times(float gate, float up) {
  return from_float<T>(rounded<T>(gate / (1.0f + expf(-gate))) * up);
}

// Eight consecutive 16-bit values held in one 16-byte load. A bfloat16 is the top half of its
// float, so each value costs one integer instruction (nvcc spends two on the upper one of a
// pair: a byte permute, then the shift it also uses for the lower).
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  } else {
    const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = to_float(v[i]);
  }
}

// An integer code below 2^23 becomes a float without an int-to-float conversion: OR-ing it into
// the mantissa of 2^23 gives exactly 2^23 + q, so subtracting (2^23 + zero) leaves q - zero
// exactly, in one integer and one float instruction.
constexpr float kMagic = 8388608.0f;
__device__ __forceinline__ float magic_code(uint32_t q) { return __uint_as_float(0x4B000000u | q); }

// Bits [off, off + nbits) of the little-endian word pair lo, hi (0 <= off < 32, nbits <= 8);
// hi matters only when the field crosses into it, as 3-bit codes do.
__device__ __forceinline__ uint32_t bit_field(uint32_t lo, uint32_t hi, int off, int nbits) {
  uint32_t v = lo >> off;
  if (off + nbits > 32) v |= hi << (32 - off);
  return v & ((1u << nbits) - 1u);
}

// Bits [bit, bit + nbits) of a little-endian stream of 32-bit words, nbits <= 8, reading the next
// word only when the field crosses into it and it exists.
__device__ __forceinline__ uint32_t stream_bits(const uint32_t* words, int64_t bit, int nbits,
                                                int64_t nwords) {
  const int64_t w = bit >> 5;
  const int off = static_cast<int>(bit & 31);
  const uint32_t hi = off + nbits > 32 && w + 1 < nwords ? __ldg(words + w + 1) : 0u;
  return bit_field(__ldg(words + w), hi, off, nbits);
}

// Byte permute: byte i of the result is byte (sel >> 4i) & 7 of the pair b:a (a holds bytes 0-3).
// sel's nibbles must have bit 3 clear (it would replicate the byte's sign instead).
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

// d += A B on tensor cores, m16n8k16, fp32 accumulation (compute capability 8.0 and later). The
// fragments as PTX defines them, with g = lane / 4 and c = lane % 4, each register two 16-bit
// values, the lower k first: a[0] holds A[g][2c, 2c+1], a[1] A[g+8][2c, 2c+1], a[2] A[g][2c+8,
// 2c+9], a[3] A[g+8][2c+8, 2c+9]; b[0] holds B[2c, 2c+1][g], b[1] B[2c+8, 2c+9][g]; d[0], d[1]
// are D[g][2c, 2c+1] and d[2], d[3] D[g+8][2c, 2c+1].
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // the hosts take this path only on compute capability 8.0 and later
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Writes `outputs` sums through store(o, sum), each over one partial per block of a cluster of
// `ranks` blocks split along `in` (this block is `rank`); at(p, o) reads output o from a block's
// partial buffer p in shared memory (a float, or any sum with +=). With ranks 1 the block's own
// partials are the sums. With more, rank r adds up its share of the outputs across the cluster's
// shared memory in rank order, the same order every call; every block of the cluster must call
// this.
template <typename At, typename Store>
__device__ __forceinline__ void store_cluster_sums(float* part, int ranks, int rank, int outputs,
                                                   At at, Store store) {
  if (ranks == 1) {
    for (int o = threadIdx.x; o < outputs; o += blockDim.x) store(o, at(part, o));
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every block's partials are in its shared memory
  const int per = (outputs + ranks - 1) / ranks;
  for (int o = rank * per + threadIdx.x; o < min(outputs, (rank + 1) * per); o += blockDim.x) {
    auto s = at(cluster.map_shared_rank(part, 0), o);
    for (int q = 1; q < ranks; ++q) s += at(cluster.map_shared_rank(part, q), o);
    store(o, s);
  }
  cluster.sync();  // no block leaves while another still reads its shared memory
#else
  __trap();  // the hosts split `in` across a cluster only on compute capability 9.0 and later
#endif
}

// The launch attribute grouping blocks into clusters of x by y (cudaLaunchKernelEx).
inline cudaLaunchAttribute cluster_dims(unsigned x, unsigned y) {
  cudaLaunchAttribute a = {};
  a.id = cudaLaunchAttributeClusterDimension;
  a.val.clusterDim.x = x;
  a.val.clusterDim.y = y;
  a.val.clusterDim.z = 1;
  return a;
}

// Programmatic dependent launch (compute capability 9.0). A decode step is some 170 kernels of
// a few microseconds each, and each one's blocks used to start, and send out their first loads,
// only once the one before had finished. launch() lets a kernel start while the one before it
// runs; its blocks then obey one rule: before wait_then_release() they only warm L2 with weight
// or KV-cache bytes (prefetch_l2, a hint that cannot change what any load returns), and every
// load and store that a result depends on comes after it. It waits until the kernel before has
// finished and its writes are visible, then lets the next kernel start its own prologue: at most
// two kernels overlap, the second one only prefetching.
__device__ __forceinline__ void wait_then_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Asks L2 for [p, p + bytes); p and bytes multiples of 16, inside one tensor.
__device__ __forceinline__ void prefetch_l2(const void* p, int64_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int64_t kMaxBulk = int64_t{1} << 30;
  for (const char* c = static_cast<const char*>(p); bytes > 0; c += kMaxBulk, bytes -= kMaxBulk)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(c),
                 "r"(static_cast<uint32_t>(bytes < kMaxBulk ? bytes : kMaxBulk))
                 : "memory");
#endif
}
// ... for the 16-byte pieces that lie wholly inside [p, p + bytes), any alignment: the ends are
// rounded inwards, so no byte outside the span is asked for.
__device__ __forceinline__ void prefetch_l2_within(const void* p, int64_t bytes) {
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + 15) & ~uintptr_t{15};
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~uintptr_t{15};
  if (end > begin) prefetch_l2(reinterpret_cast<const void*>(begin), static_cast<int64_t>(end - begin));
}
// ... for the lines holding [p, p + bytes), any alignment: a few lines, one instruction each.
__device__ __forceinline__ void prefetch_l2_lines(const void* p, int bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const char* c = static_cast<const char*>(p);
  for (int o = 0; o < bytes; o += 128) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(c + o));
  if (bytes > 0) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(c + bytes - 1));
#endif
}

// A kernel launch: grid, block, dynamic shared memory, stream, and a cluster shape where the
// blocks split `in` and meet in distributed shared memory.
struct Launch {
  dim3 grid, block;
  size_t shared = 0;
  cudaStream_t stream = nullptr;
  dim3 cluster = dim3(1, 1, 1);
};

// Launches kernel(args...) as `l` says, with programmatic dependent launch where
// overlapped_launches() (qsweep/kernels/launch_overlap.h):
// every kernel launched here must call wait_then_release() before its first load or store.
template <typename... Params, typename... Args>
void launch(const Launch& l, void (*kernel)(Params...), Args&&... args) {
  cudaLaunchAttribute attrs[2] = {};
  unsigned n = 0;
  if (l.cluster.x * l.cluster.y > 1) attrs[n++] = cluster_dims(l.cluster.x, l.cluster.y);
  if (overlapped_launches()) {
    attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = l.grid;
  config.blockDim = l.block;
  config.dynamicSmemBytes = l.shared;
  config.stream = l.stream;
  config.attrs = attrs;
  config.numAttrs = n;
  QSWEEP_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

// Calls f(std::integral_constant<int, V>{}) for the V among kValues equal to v and returns true;
// returns false, calling nothing, when none is. How a host function picks the compile-time
// variant (bits, tile, group size) of the kernel it launches.
template <int... kValues, typename F>
bool with_constant(int64_t v, F&& f) {
  return ((v == kValues ? (f(std::integral_constant<int, kValues>{}), true) : false) || ...);
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// log2(v) for a power of two v, -1 for any other v: the shift a kernel takes in place of a
// division by a block or group size.
inline int log2_or_minus_one(int64_t v) {
  if (v <= 0 || (v & (v - 1)) != 0) return -1;
  int shift = 0;
  while ((int64_t{1} << shift) < v) ++shift;
  return shift;
}

// Warps sharing a GEMV's row group (1, 2 or 4) for rows of `row_pieces` 16-byte pieces: enough
// that each lane still has about `unroll` pieces of a row to load (long rows, as in down_proj,
// would otherwise leave few warps with long serial loops).
inline int warps_per_row(int64_t row_pieces, int unroll) {
  return row_pieces >= 4 * 32 * unroll ? 4 : row_pieces >= 2 * 32 * unroll ? 2 : 1;
}

// The rows of a GEMV whose row groups are weight row pairs (the dense, NF4/FP4 and LLM.int8
// GEMVs; qsweep/kernels/gemv_io.h), and what its epilogue stores. For a plain product
// (gate == 0) group g is rows 2g and 2g + 1 and each row's sum is an output. For a stacked
// gate|up weight of 2 * gate rows, group j is gate row j and up row j + gate, so that the thread
// storing output j holds both sums.
struct GemvRows {
  int out;          // weight rows
  int gate;         // 0, or the gate half's rows (out / 2)
  bool accumulate;  // a plain product added into y (the residual), not stored over it

  static GemvRows of(int out, const GemvIo& io) {
    const bool gate_up = io.output == GemvOutput::silu_gate_up;
    return {out, gate_up ? out / 2 : 0, io.adds()};
  }
  // Groups to cover, and the grid that covers them at `per_block` groups a block.
  __host__ __device__ int groups() const { return gate ? gate : (out + 1) / 2; }
  int64_t blocks(int64_t per_block) const { return (groups() + per_block - 1) / per_block; }
  // Weight row r (0 or 1) of group g; `out` (no row) past the last group.
  __device__ int row(int g, int r) const {
    return gate == 0 ? 2 * g + r : g < gate ? g + r * gate : out;
  }
  // The rows of groups [first, first + count) (first < groups()) as runs of consecutive rows
  // [x, y): one run for a plain product, the gate rows and the up rows for gate|up.
  __device__ int runs() const { return gate ? 2 : 1; }
  __device__ int2 run(int first, int count, int r) const {
    const int end = min(first + count, groups());
    return gate == 0 ? make_int2(2 * first, min(2 * end, out))
                     : make_int2(first + r * gate, end + r * gate);
  }
};

// One output of a GEMV with GemvRows' epilogue, for batch row m: a plain product's sum v of
// weight row n, stored rounded to T at y[m][n] or, with `accumulate`, added to it as
// `y + product` rounds; a gate|up product's two sums for output j, each rounded to T first as the
// separate GEMV would store it, stored as silu_times at y[m][j] (y [M, gate]).
template <typename T>
__device__ __forceinline__ void store_product(const GemvRows& rows, T* y, int m, int n, float v) {
  T& out = y[static_cast<int64_t>(m) * rows.out + n];
  out = from_float<T>(rows.accumulate ? to_float(out) + rounded<T>(v) : v);
}
template <typename T>
__device__ __forceinline__ void store_silu_gate_up(const GemvRows& rows, T* y, int m, int j,
                                                   float gate, float up) {
  y[static_cast<int64_t>(m) * rows.gate + j] = silu_times<T>(rounded<T>(gate), rounded<T>(up));
}

// Stores a block's GEMV outputs for groups [first, first + kGroups) and batch rows [0, m_rows):
// thread (g, r, m) takes row r of group first + g and sum(g, r, m, n), the float sum of weight
// row n for batch row m, and stores it as above.
template <typename T, int kGroups, int kTile, typename Sum>
__device__ __forceinline__ void store_gemv_rows(const GemvRows& rows, int first, int m_rows, T* y,
                                                Sum sum) {
  const int t = threadIdx.x;
  if (t >= kGroups * 2 * kTile) return;
  const int g = t / (2 * kTile), r = t / kTile % 2, m = t % kTile;
  const int n = rows.row(first + g, r);
  if (m >= m_rows || n >= rows.out) return;
  if (rows.gate == 0)
    store_product<T>(rows, y, m, n, sum(g, r, m, n));
  else if (r == 0)
    store_silu_gate_up<T>(rows, y, m, n, sum(g, 0, m, n), sum(g, 1, m, n + rows.gate));
}

// The end of a GEMV whose warps hold kRows x kTile partial sums for their row group, kSplit warps
// to a group: each sum is reduced across its warp, then each output adds its group's kSplit
// slices in a fixed order (the same sums every call) and is stored as store_gemv_rows stores it.
template <typename T, int kWarps, int kSplit, int kRows, int kTile>
__device__ __forceinline__ void store_split_sums(const float (&acc)[kRows][kTile],
                                                 float (&partial)[kWarps][kRows][kTile],
                                                 int warp, int lane, const GemvRows& rows,
                                                 int first, int m_rows, T* y) {
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < kTile; ++m) {
      const float v = warp_sum(acc[r][m]);
      if (lane == 0) partial[warp][r][m] = v;
    }
  __syncthreads();
  store_gemv_rows<T, kWarps / kSplit, kTile>(rows, first, m_rows, y, [&](int g, int r, int m, int) {
    float v = 0.f;
#pragma unroll
    for (int s = 0; s < kSplit; ++s) v += partial[g * kSplit + s][r][m];
    return v;
  });
}

// A 1-D tensor that is contiguous, or a 2-D one whose rows are (a column slice of a wider
// tensor, such as a stacked projection's part, has strided rows and contiguous elements).
inline bool rows_contiguous(const at::Tensor& t) {
  return t.dim() == 1 ? t.is_contiguous() : t.dim() == 2 && t.stride(1) == 1;
}

// Refuses, naming the function and the argument, a tensor the decode kernels cannot take whole.
inline void check_input(const at::Tensor& t, const char* what, const char* fn) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.is_contiguous(), fn, ": ", what,
              " must be a contiguous CUDA tensor");
}

// A [rows, cols] operand that may be a column slice of a wider one: rows strided, each row
// contiguous.
inline void check_rows(const at::Tensor& t, const char* what, const char* fn) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.dim() == 2 && rows_contiguous(t), fn, ": ", what,
              " must be a 2-D CUDA tensor with contiguous rows");
}

}  // namespace qsweep::cuda::detail

// Runs `body` with `scalar_t` bound to the CUDA type of a half or bfloat16 tensor.
#define QSWEEP_DISPATCH_HALF_TYPES(dtype, name, ...)                                     \
  [&] {                                                                                  \
    if ((dtype) == at::kHalf) {                                                          \
      using scalar_t = __half;                                                           \
      return __VA_ARGS__();                                                              \
    } else if ((dtype) == at::kBFloat16) {                                               \
      using scalar_t = __nv_bfloat16;                                                    \
      return __VA_ARGS__();                                                              \
    }                                                                                    \
    TORCH_CHECK(false, name, ": x must be float16 or bfloat16, got ", (dtype));          \
  }()

// Runs `body` with `kTile` bound to the smallest batch tile (1, 2, 4, 8, 16) that holds m rows;
// kernels loop over whole tiles and skip the rows past m.
#define QSWEEP_DISPATCH_BATCH_TILE(m, ...)                                               \
  [&] {                                                                                  \
    if ((m) <= 1) { constexpr int kTile = 1; return __VA_ARGS__(); }                     \
    if ((m) <= 2) { constexpr int kTile = 2; return __VA_ARGS__(); }                     \
    if ((m) <= 4) { constexpr int kTile = 4; return __VA_ARGS__(); }                     \
    if ((m) <= 8) { constexpr int kTile = 8; return __VA_ARGS__(); }                     \
    constexpr int kTile = 16;                                                            \
    return __VA_ARGS__();                                                                \
  }()

// Runs `body` with scalar_t bound to float, __half or __nv_bfloat16.
#define QSWEEP_DISPATCH_FLOAT_TYPES(dtype, name, ...)                                    \
  [&] {                                                                                  \
    if ((dtype) == at::kFloat) {                                                         \
      using scalar_t = float;                                                            \
      return __VA_ARGS__();                                                              \
    }                                                                                    \
    return QSWEEP_DISPATCH_HALF_TYPES(dtype, name, __VA_ARGS__);                         \
  }()
