#pragma once
// y [M, out] = x [M, in] W^T for a 16-bit dense weight and a decode batch of up to
// kDenseGemvMaxRows rows: the quantized formats' GEMV without the dequantization (16-byte loads,
// fp32 FMAs, the weight streamed into L2 while the kernel before runs). cuBLAS reads a batch-1
// step's small projections (q|k|v, o) at 1.2-1.8 TB/s of the 4.2 an H200 copies at.
#include "qsweep/kernels/gemv_io.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qsweep::cuda {

constexpr int64_t kDenseGemvMaxRows = 4;

// Whether dense_gemv takes these: x [M <= kDenseGemvMaxRows, in] contiguous and w [out, in] with
// contiguous rows (a stacked projection's part is a view), both float16 or both bfloat16 on one
// CUDA device, in and w's row stride multiples of 8, both 16-byte aligned.
bool dense_gemv_supported(const at::Tensor& x, const at::Tensor& w);

// All of `io` (gemv_io.h) folded into the GEMV (a norm of more than one row, or of more than
// 4,096 16-bit columns, in add_rms_norm before it): for silu_gate_up w stacks gate over up and
// y is [M, out / 2].
at::Tensor dense_gemv(const at::Tensor& x, const at::Tensor& w, const GemvIo& io = {});

}  // namespace qsweep::cuda
