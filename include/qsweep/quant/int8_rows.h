#pragma once
// LLM.int8() weights: one int8 code per weight and one absmax per output row.
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

namespace qsweep {

// w [out, in]: cast to compute_dtype, then to float16 as bitsandbytes' Int8Params does before
// int8_vectorwise_quant; threshold (>= 0) is the activation magnitude that sends an input
// column to the compute-dtype path at run time (0: none).
Int8RowWeight quantize_int8_rows(const at::Tensor& w, double threshold,
                                 at::ScalarType compute_dtype);

}  // namespace qsweep
