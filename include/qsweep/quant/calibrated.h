#pragma once
// GPTQ and AWQ over a whole model, layer by layer as both papers run them: the calibration
// windows' hidden states enter layer 0, each layer is quantized from the inputs its projections
// see, and the quantized layer's outputs become the next layer's inputs. Only one layer's
// activations are held at a time.
#include "qsweep/model/model.h"
#include "qsweep/quant/quant_config.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace qsweep {

// How much each part of the model lost, on the calibration inputs it saw, next to what round-to-
// nearest at the same bits and group size would have lost on the same inputs: the check that
// the calibration paid off. Mean squared output error per output element and token.
struct QuantError {
  std::string name;   // GPTQ: each projection ("model.layers.3.self_attn.q_proj"); AWQ: each
                      // block it scales ("model.layers.3.qkv": the attention output)
  double error = 0;
  double rtn_error = 0;
};
struct CalibrationReport {
  std::vector<QuantError> errors;
};

// Quantizes every decoder layer's projections of `m` (dense, on its device) by config.method
// (gptq or awq) on token windows [samples, seq_len] (calibration.h). AWQ also rescales the
// RMSNorm weights it folds its scales into. Embeddings, norms and lm_head stay as they are.
CalibrationReport quantize_calibrated(Model& m, const QuantConfig& config, const at::Tensor& tokens);

}  // namespace qsweep
