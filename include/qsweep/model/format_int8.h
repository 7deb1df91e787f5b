#pragma once
// LLM.int8() storage (Int8RowWeight) and its mixed int8 / compute-dtype product, as
// bitsandbytes' MatMul8bitLt computes it for inference (weights held in int8 only).
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

namespace qsweep {

// Row-wise int8 quantization (bitsandbytes' int8_vectorwise_quant) of a 2-D tensor.
struct Int8Rows {
  at::Tensor codes;          // int8, same shape: round(x * 127 / absmax), outlier columns zero
  at::Tensor absmax;         // float32 [rows], of each row without its outlier elements
  at::Tensor outlier_cols;   // int64 [k]: columns holding any |x| >= threshold; empty at 0
};
Int8Rows int8_quantize_rows(const at::Tensor& x, double threshold);

// codes * absmax / 127 per row, float32 [out, in].
at::Tensor int8_rows_dequantize(const Int8RowWeight& w);
// y = x W^T for x [..., in], in x's dtype: int8 product of the non-outlier columns rescaled by
// absmax_x * SCB / 127^2, plus the outlier columns of x times the dequantized weight columns.
at::Tensor int8_rows_forward(const Int8RowWeight& w, const at::Tensor& x);

}  // namespace qsweep
