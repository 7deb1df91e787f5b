#pragma once
// Round-to-nearest integer quantization in groups of input channels, stored in GPTQ's layout.
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

namespace qsweep {

// w [out, in]: bits 2, 3, 4 or 8; group_size a divisor of in, or -1 for one group per output
// channel; scales rounded to compute_dtype as checkpoints store them (the codes are chosen
// with the float32 scale, as GPTQ's quantizer does).
IntGroupWeight quantize_rtn(const at::Tensor& w, int bits, int group_size, bool sym,
                            at::ScalarType compute_dtype);

// What quantize_rtn's weight dequantizes to, float32 [out, in], computed on w's device without
// packing: for comparing other methods against RTN.
at::Tensor rtn_fake_quantize(const at::Tensor& w, int bits, int group_size, bool sym,
                             at::ScalarType compute_dtype);

}  // namespace qsweep
