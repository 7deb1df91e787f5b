#pragma once
// The `quantization_config` of a Hugging Face config.json: which pre-quantized format the
// checkpoint's linear layers are stored in, read as transformers reads it (BitsAndBytesConfig,
// GPTQConfig) and written as transformers writes it. Plain data, no libtorch, so the sweep spec
// can check a `method: from_checkpoint` config at plan time.
#include "qsweep/util/dtype.h"

#include <string>

namespace qsweep {

// bnb_4bit and bnb_8bit are quant_method "bitsandbytes" with load_in_4bit / load_in_8bit;
// awq_gemm is quant_method "awq" with version "gemm" (AutoAWQ's default layout).
enum class CheckpointFormat { none, bnb_4bit, bnb_8bit, gptq, awq_gemm };

const char* checkpoint_format_name(CheckpointFormat format);

struct CheckpointQuantization {
  CheckpointFormat format = CheckpointFormat::none;
  std::string source;                 // the config.json it came from, for messages
  // bnb_4bit. Each layer's quant_state says its own type, block size and nesting; these are the
  // config's defaults and the dtype the layers compute in.
  std::string bnb_quant_type = "fp4"; // "nf4" | "fp4" (BitsAndBytesConfig's default is fp4)
  bool double_quant = false;
  DType compute_dtype = DType::fp32;  // bnb_4bit_compute_dtype (default float32)
  // bnb_8bit: activation columns above this run in the compute dtype.
  double threshold = 6.0;
  // gptq, awq_gemm (AWQ: 4 bits, asymmetric, group_size from its config)
  int bits = 4;
  int group_size = 128;               // -1: one group per output channel
  bool sym = true;
  bool desc_act = false;
  // checkpoint_format "gptq" (v1) stores zero - 1, as qsweep holds it; "gptq_v2" the zero.
  bool zeros_minus_one = true;
  // The writer's: lm_head is quantized too (GPTQModel's `lm_head`, bitsandbytes without
  // lm_head in llm_int8_skip_modules). The reader looks at each layer's tensors instead.
  bool lm_head = false;
};

// DIR/config.json's quantization_config; format none when there is none. An unsupported
// quant_method or value is an error naming the file and the key, and what is supported.
CheckpointQuantization read_checkpoint_quantization(const std::string& model_dir);

// config.json text (as read from the unquantized model) with quantization_config set for q,
// torch_dtype set to `dtype` and, when lm_head is quantized, tie_word_embeddings false.
std::string config_json_with_quantization(const std::string& config_json,
                                          const CheckpointQuantization& q, DType dtype);

// "float32", "float16", "bfloat16": torch's names, as config.json and quant_state hold them.


}  // namespace qsweep
