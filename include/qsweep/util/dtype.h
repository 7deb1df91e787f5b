#pragma once
// The compute dtypes a config can ask for: one enum, one name and one parser for the job file,
// the CLI and the store alike. The model library maps it to libtorch's scalar type.
#include <optional>
#include <string_view>

namespace qsweep {

enum class DType { fp32, fp16, bf16 };

inline constexpr DType kAllDTypes[] = {DType::fp32, DType::fp16, DType::bf16};

// "fp32", "fp16", "bf16".
const char* dtype_name(DType dtype);
// "float32", "float16", "bfloat16": how Hugging Face's config.json names them (torch_dtype).
const char* hf_dtype_name(DType dtype);
// Those names, and Hugging Face's "float32", "float16", "bfloat16"; nothing for anything else.
std::optional<DType> parse_dtype(std::string_view name);

}  // namespace qsweep
