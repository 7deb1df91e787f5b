#pragma once
// bitsandbytes' 4-bit quantization (NF4 and FP4, optionally with double-quantized absmax), as
// its CUDA kernel kQuantizeBlockwise computes it when transformers loads a model in 4 bits. The
// rules and where they come from: tests/parity/bnb_reference.py.
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qsweep {

// w [out, in] of any float dtype, first cast to compute_dtype (float16, bfloat16 or float32),
// as transformers casts a layer before bitsandbytes quantizes it. blocksize must be one of
// kBnb4Blocksizes (quant_config.h).
Bnb4Weight quantize_bnb4(const at::Tensor& w, Bnb4Type type, int blocksize, bool double_quant,
                         at::ScalarType compute_dtype);

// The code of one value already scaled by its block's 1 / absmax (dQuantizeNF4, dQuantizeFP4),
// and of one value against a sorted 256-value code (dQuantize<0>).
uint8_t bnb_nf4_code_of(float x);
uint8_t bnb_fp4_code_of(float x);
uint8_t bnb_dynamic_code_of(const float* code, float x);

}  // namespace qsweep
