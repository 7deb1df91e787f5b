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

const char* hf_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::fp32: return "float32";
    case DType::fp16: return "float16";
    case DType::bf16: return "bfloat16";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType dtype : kAllDTypes)
    if (name == dtype_name(dtype) || name == hf_dtype_name(dtype)) return dtype;
  return std::nullopt;
}

}  // namespace qsweep
