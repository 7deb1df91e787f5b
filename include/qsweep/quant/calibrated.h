#pragma once
// GPTQ and AWQ over a whole model, layer by layer as both papers run them: the calibration
// windows' hidden states enter layer 0, each layer is quantized from the inputs its projections
// see, and the quantized layer's outputs become the next layer's inputs. Only one layer's
// activations are held at a time.
#include "qsweep/model/model.h"
#include "qsweep/quant/quant_config.h"

#include <ATen/core/Tensor.h>

namespace qsweep {

// Quantizes every decoder layer's projections of `m` (dense, on its device) by config.method
// (gptq or awq) on token windows [samples, seq_len] (calibration.h). AWQ also rescales the
// RMSNorm weights it folds its scales into. Embeddings, norms and lm_head stay as they are.
void quantize_calibrated(Model& m, const QuantConfig& config, const at::Tensor& tokens);

}  // namespace qsweep
