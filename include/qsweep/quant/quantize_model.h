#pragma once
// Applies a config's quantization method to a loaded model: the one switch over methods.
#include "qsweep/model/model.h"
#include "qsweep/quant/quant_config.h"

namespace qsweep {

// Replaces every projection of the decoder layers (and lm_head with quantize_lm_head, which
// unties it from the embeddings) by the method's storage format. Embeddings and norms stay in
// the model's dtype, as bitsandbytes and GPTQ leave them. Layers are quantized one at a time,
// each dense weight freed as its replacement is made, so the model is never held twice in full
// precision. gptq and awq take their calibration windows [samples, seq_len] (calibration.h)
// and quantize layer by layer on the model's device (calibrated.h); from_checkpoint, whose
// linears load_model has read in their stored format, leaves the model as it is.
void quantize_model(Model& model, const QuantConfig& config, const at::Tensor& calibration = {});

// One weight [out, in] in the method's format, computing in `compute_dtype`.
Linear quantize_linear(const at::Tensor& weight, const QuantConfig& config,
                       at::ScalarType compute_dtype);

}  // namespace qsweep
