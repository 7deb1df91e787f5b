#pragma once
// CUDA kernels for the quantized storage formats of qsweep/model/linear.h, behind host functions
// that take and return at::Tensor. Every function launches on at::cuda::getCurrentCUDAStream(),
// never synchronizes the host and allocates nothing but its result (the int8 path can take a
// caller's workspace instead), so a decode step built from them replays as one CUDA graph. On
// compute capability 9.0 a kernel may start while the one before it finishes and stream its
// weights into L2 meanwhile (programmatic dependent launch; QSWEEP_PDL=0 turns it off).
//
// Two kinds of function per format:
//   *_matmul      y [M, out] = x [M, in] W^T with the weight dequantized on the fly; meant for
//                 decode (M up to a few hundred), where reading the stored weight once is the
//                 whole cost. A GEMV (fp32 FMAs) serves the smallest batches and a tensor-core
//                 tile kernel the larger ones (MatmulPath); for prefill use the next one.
//   *_dequantize  W [out, in] in the compute dtype, for prefill and large batches: follow it with
//                 at::matmul (cuBLAS) in the caller.
// x is 2-D, contiguous, float16 or bfloat16; y has x's dtype.
#include "qsweep/kernels/gemv_io.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qsweep::cuda {

// Which kernel a *_matmul runs. `automatic` takes the GEMV below kTensorCoreRows rows and the
// tensor-core tile kernel from there; the other two force one (tests and the kernel benchmark)
// where the shape allows it: the tile kernel needs in % 32 == 0 and 16-byte aligned rows (bnb4
// also blocksize % 32 == 0), and without them the GEMV runs.
enum class MatmulPath { automatic, gemv, tensor_core };
// Measured on an H200 (docs/performance.md, 1B MLP shapes): from 8 rows the tile kernel is ahead
// of the GEMV in the 4-bit formats (NF4 20 us against 31-34 us); at 16 rows in every format.
constexpr int64_t kTensorCoreRows = 8;
// `from`: the rows where `automatic` switches, later for a format whose GEMV serves more.
inline bool use_tensor_cores(MatmulPath path, int64_t rows, int64_t from = kTensorCoreRows) {
  return path == MatmulPath::tensor_core || (path == MatmulPath::automatic && rows >= from);
}

// GPTQ layout (IntGroupWeight): qweight int32 [ceil(in * bits / 32), out] holds, for each output
// column, the codes of input channels 0, 1, 2, ... as one little-endian bit stream of `bits`-bit
// fields (the words AutoGPTQ's pack writes, 3-bit fields crossing words included); zeros int32
// [groups, ceil(out * bits / 32)] packs one zero code per output column the same way; scales
// [groups, out] in x's dtype; g_idx int32 [in] names each input channel's group. The weight is
// scale * (q - zero) where the stored zero field holds zero - 1 modulo 2^bits, as GPTQ
// checkpoints keep it (linear.h). in must be a multiple of 32. qweight, scales and zeros may be
// views with strided rows (a stacked projection's parts), elements within a row contiguous. Any
// g_idx works: where 32 consecutive channels share a group the kernels read one scale and zero
// for them, otherwise (act-order) they look both up per channel, slower. Without act-order, and
// with group_size a power of two or at least in, leave g_idx undefined: channel k is then in
// group k / group_size, computed rather than read, and a batch of one row takes a GEMV that
// needs no staging of groups.
struct IntGroupTensors {
  at::Tensor qweight, zeros, scales;
  at::Tensor g_idx;        // int32 [in], or undefined: sequential groups of group_size
  int64_t bits = 4, in = 0;
  int64_t group_size = 0;  // read only where g_idx is undefined
};
// `io` (gemv_io.h): the GEMVs' epilogue adds into the residual, and the one-row GEMV's (sequential
// groups, 2/4/8 bits) writes SiLU * up where the gate half's columns are a multiple of 4; a norm,
// and the other paths' products, take the kernels of gemv_io.h around.
at::Tensor int_group_matmul(const at::Tensor& x, const IntGroupTensors& w,
                            MatmulPath path = MatmulPath::automatic, const GemvIo& io = {});
at::Tensor int_group_dequantize(const IntGroupTensors& w);

// bitsandbytes 4-bit (Bnb4Weight): packed uint8, ceil(out * in / 2) bytes, two codes per byte of
// the row-major [out, in] weight, the first in the high nibble; code float32 [16]; one absmax
// per `blocksize` consecutive elements. Without double quantization `absmax` is float32 [blocks]
// and qabsmax, absmax2, code2 are undefined tensors; with it `absmax` is undefined and the
// block's absmax is code2[qabsmax[b]] * absmax2[b / 256] + offset, or + offsets[b / 256] where
// `offsets` (float32 [ceil(blocks / 256)]) is defined: a stacked projection's parts each keep
// their own offset.
struct Bnb4Tensors {
  at::Tensor packed, code, absmax;
  at::Tensor qabsmax, absmax2, code2, offsets;
  double offset = 0;
  int64_t blocksize = 64;
  int64_t out = 0, in = 0;
};
// Where in % 64 == 0 and blocksize is a power of two from 64 (compute capability 8.0 on), the
// GEMV of 2 or more rows is a tensor-core GEMV, and `automatic` takes it up to 32 rows.
// `io` (gemv_io.h): the batch-1 GEMV folds it in, where a power-of-two blocksize and
// in % 32 == 0 let the piece kernel run (its norm: one row of up to 4,096 16-bit columns);
// elsewhere the kernels of gemv_io.h run around the product.
at::Tensor bnb4_matmul(const at::Tensor& x, const Bnb4Tensors& w,
                       MatmulPath path = MatmulPath::automatic, const GemvIo& io = {});
at::Tensor bnb4_dequantize(const Bnb4Tensors& w, at::ScalarType dtype);

// LLM.int8() (Int8RowWeight): weight int8 [out, in] and row_absmax float32 [out] (bitsandbytes'
// CB and SCB, w = CB * SCB / 127). As bitsandbytes does it: every input column holding an element
// with |x| >= threshold is an outlier column (none when threshold is 0); x is quantized per row
// to int8 by its absmax over the other elements, outlier columns left at zero; y = (xq . CB)
// * rowmax * SCB / 127^2 + x[:, outliers] . W[:, outliers], the second term in float32 against
// the dequantized weight columns. `workspace` is optional: a uint8 CUDA tensor of at least
// int8_workspace_bytes(M, in) bytes that the call may overwrite; without one the call allocates
// its scratch itself (from the caching allocator, still without a host sync).
int64_t int8_workspace_bytes(int64_t m, int64_t in);
// `io` (gemv_io.h): the GEMV's epilogue writes SiLU * up or adds into the residual; past it the
// tile kernel's product takes the kernels of gemv_io.h, and a norm is add_rms_norm's before
// the activations are prepared.
at::Tensor int8_matmul(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& row_absmax,
                       double threshold, const at::Tensor& workspace = {},
                       MatmulPath path = MatmulPath::automatic, const GemvIo& io = {});
at::Tensor int8_dequantize(const at::Tensor& weight, const at::Tensor& row_absmax,
                           at::ScalarType dtype);
// x^ [M, in] in x's dtype (fp16/bf16): xq * rowmax / 127 outside the outlier columns, x inside
// them, so that x^ . int8_dequantize(weight) is the sum int8_matmul takes (its int32 part plus
// its float part), up to 16-bit rounding of the operands: the product of a dense-weight GEMM.
at::Tensor int8_activations(const at::Tensor& x, double threshold);

}  // namespace qsweep::cuda
