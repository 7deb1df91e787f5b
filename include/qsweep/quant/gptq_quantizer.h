#pragma once
// The scale and zero point of GPTQ's Quantizer (IST-DASLab/gptq quant.py: find_params with
// perchannel=True, weight=True, no MSE search) and its rounding, shared by RTN and GPTQ.
#include <ATen/core/Tensor.h>

namespace qsweep {

struct GroupScale {
  at::Tensor scale;   // float32 [rows]
  at::Tensor zero;    // float32 [rows], integral values in [0, 2^bits - 1]
};

// One scale and zero per row of w [rows, cols] (a group of input channels of every output):
// xmin = min(row min, 0), xmax = max(row max, 0); symmetric takes xmax = max(|xmin|, xmax) and
// xmin = -xmax where xmin < 0; a row of zeros gets [-1, 1]; scale = (xmax - xmin) / maxq and
// zero = (maxq + 1) / 2 symmetric, round(-xmin / scale) asymmetric, with maxq = 2^bits - 1.
GroupScale gptq_find_params(const at::Tensor& w, int bits, bool sym);
// clamp(round(w / scale) + zero, 0, maxq) per row, int32.
at::Tensor gptq_codes(const at::Tensor& w, const GroupScale& s, int bits);

}  // namespace qsweep
