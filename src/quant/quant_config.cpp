#include "qsweep/quant/quant_config.h"

#include <algorithm>

namespace qsweep {

const char* quant_method_name(QuantMethod method) {
  switch (method) {
    case QuantMethod::none: return "none";
    case QuantMethod::rtn: return "rtn";
    case QuantMethod::bnb_nf4: return "bnb_nf4";
    case QuantMethod::bnb_fp4: return "bnb_fp4";
    case QuantMethod::llm_int8: return "llm_int8";
    case QuantMethod::gptq: return "gptq";
    case QuantMethod::awq: return "awq";
    case QuantMethod::from_checkpoint: return "from_checkpoint";
  }
  return "?";
}

std::optional<QuantMethod> parse_quant_method(std::string_view name) {
  for (QuantMethod method : kAllQuantMethods)
    if (name == quant_method_name(method)) return method;
  return std::nullopt;
}

const std::vector<std::string>& quant_keys_of(QuantMethod method) {
  static const std::vector<std::string> none, int_group = {"bits", "group_size", "sym", "quantize_lm_head"},
      gptq = {"bits", "group_size", "sym", "damp_percent", "desc_act", "static_groups",
              "calibration"},
      awq = {"bits", "group_size", "clip", "calibration"},
      bnb = {"blocksize", "double_quant", "compute_dtype", "quantize_lm_head"},
      int8 = {"threshold", "compute_dtype", "quantize_lm_head"};
  switch (method) {
    case QuantMethod::none:
    case QuantMethod::from_checkpoint: return none;
    case QuantMethod::rtn: return int_group;
    case QuantMethod::gptq: return gptq;
    case QuantMethod::awq: return awq;
    case QuantMethod::bnb_nf4:
    case QuantMethod::bnb_fp4: return bnb;
    case QuantMethod::llm_int8: return int8;
  }
  return none;
}

bool needs_calibration(QuantMethod method) {
  return method == QuantMethod::gptq || method == QuantMethod::awq;
}

int calibration_seq_len(const QuantConfig& c, int context) {
  const int wanted = c.calibration.seq_len > 0              ? c.calibration.seq_len
                     : c.method == QuantMethod::awq ? kAwqSeqLen
                                                            : kGptqSeqLen;
  return context > 0 ? std::min(wanted, context) : wanted;
}

double nominal_bits_per_weight(const QuantConfig& c) {
  switch (c.method) {
    case QuantMethod::none:
    case QuantMethod::from_checkpoint: return 16;
    case QuantMethod::rtn:
    case QuantMethod::gptq:
    case QuantMethod::awq:
      // A 16-bit scale and a `bits`-wide zero per group; per-channel groups cost next to nothing.
      return c.bits + (c.group_size > 0 ? (16.0 + c.bits) / c.group_size : 0.0);
    case QuantMethod::bnb_nf4:
    case QuantMethod::bnb_fp4:
      // fp32 absmax per block, or with double quant one byte per block and fp32 per 256 blocks.
      return 4 + (c.double_quant ? 8.0 / c.blocksize + 32.0 / (256.0 * c.blocksize)
                                 : 32.0 / c.blocksize);
    case QuantMethod::llm_int8: return 8;  // plus one fp32 per row, negligible
  }
  return 16;
}

}  // namespace qsweep
