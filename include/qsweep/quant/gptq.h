#pragma once
// GPTQ (Frantar et al. 2022; IST-DASLab/gptq and AutoGPTQ fasterquant): integer codes in groups
// of input channels chosen column by column, each column's rounding error spread over the
// columns not yet quantized through the inverse Hessian of the layer's inputs. It stores the
// same IntGroupWeight as RTN.
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace qsweep {

struct GptqOptions {
  int bits = 4;               // 2, 3, 4, 8
  int group_size = 128;       // a divisor of in (32, 64, 128) or -1 (one group per row)
  bool sym = true;
  double damp_percent = 0.01; // of the mean Hessian diagonal
  bool desc_act = false;      // act-order: columns in order of decreasing Hessian diagonal
  bool static_groups = false; // group params fixed from the original weights before any update
  int block_size = 128;       // lazy batch update block
};

// GPTQ's Hessian 2/n * sum x x^T over every calibration row, accumulated as a running mean
// (as the reference add_batch does) in float32 on x's device. The reference's n counts
// sequences rather than rows; the scale of H cancels out of the codes and only `loss` scales.
struct Hessian {
  at::Tensor h;               // float32 [in, in]; undefined before the first batch
  int64_t rows = 0;
};
void add_to_hessian(Hessian& hessian, const at::Tensor& x);   // x [..., in], any float dtype

struct GptqResult {
  IntGroupWeight weight;      // on w's device, scales in compute_dtype
  at::Tensor dequantized;     // float32 [out, in] on w's device: what `weight` holds
  double damp = 0;            // dampening finally added to the diagonal
  int damp_retries = 0;       // how often Cholesky failed and dampening was raised
  double loss = 0;            // GPTQ's sum of (w - q)^2 / d^2 / 2 (Losses.sum())
};

// Quantizes w [out, in] (any float dtype, on the device to compute on; computed in float32)
// given the Hessian of its inputs. `name` is the layer's name for the warning on a retry.
// Where Cholesky fails the dampening is raised tenfold (a dampening of 0 first to 1% of the
// mean diagonal) up to 5 times before the layer fails.
GptqResult gptq_quantize(const at::Tensor& w, const Hessian& hessian, const GptqOptions& options,
                         at::ScalarType compute_dtype, const std::string& name);

}  // namespace qsweep
