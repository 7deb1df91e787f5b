#include "qsweep/util/dtype.h"

namespace qsweep {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::fp32: return "fp32";
    case DType::fp16: return "fp16";
    case DType::bf16: return "bf16";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  if (name == "fp32" || name == "float32") return DType::fp32;
  if (name == "fp16" || name == "float16") return DType::fp16;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  return std::nullopt;
}

}  // namespace qsweep
