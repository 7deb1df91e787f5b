#pragma once
// The token windows GPTQ and AWQ calibrate on, drawn from a text file as the reference
// implementations draw them from their corpora: the text tokenized once (no BOS), then windows
// of seq_len tokens at uniformly random starts from a generator seeded by the config.
#include "qsweep/quant/quant_config.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <ATen/core/Tensor.h>

namespace qsweep {

// Token ids [samples, seq_len] (long, CPU). A text shorter than samples x seq_len tokens is
// refused, naming the file, its length in tokens and what would fit: windows of a short text
// would mostly repeat each other.
at::Tensor calibration_tokens(const Tokenizer& tokenizer, const CalibrationSpec& spec, int seq_len);

}  // namespace qsweep
