#include "qsweep/model/checkpoint_quantization.h"

#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <vector>

namespace qsweep {
namespace {

using nlohmann::json;

// What this reader accepts, for the messages that refuse anything else.
constexpr const char* kSupported =
    "supported: quant_method 'bitsandbytes' (load_in_4bit with nf4/fp4, or load_in_8bit), "
    "'gptq' (checkpoint_format gptq or gptq_v2) and 'awq' (version gemm)";

// Reads the keys of one quantization_config object, each error naming file and key.
struct Keys {
  const json& j;
  const std::string& file;

  std::string where(const std::string& key) const {
    return fmt::format("{}: key 'quantization_config.{}'", file, key);
  }
  bool has(const std::string& key) const { return j.contains(key) && !j[key].is_null(); }
  bool get_bool(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_boolean()) fail("{} must be true or false, got {}", where(key), j[key].dump());
    return j[key].get<bool>();
  }
  std::string get_string(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& allowed) const {
    if (!has(key)) return fallback;
    if (!j[key].is_string()) fail("{} must be a string, got {}", where(key), j[key].dump());
    const std::string value = j[key].get<std::string>();
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end())
      fail("{} is '{}'; qsweep reads {}", where(key), value, fmt::join(allowed, ", "));
    return value;
  }
  long long get_int(const std::string& key, long long fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_number_integer()) fail("{} must be an integer, got {}", where(key), j[key].dump());
    return j[key].get<long long>();
  }
  double get_double(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_number()) fail("{} must be a number, got {}", where(key), j[key].dump());
    return j[key].get<double>();
  }
};

DType dtype_key(const Keys& k, const std::string& key, const std::string& fallback) {
  return *parse_dtype(k.get_string(key, fallback, {"float32", "float16", "bfloat16"}));
}

void read_bitsandbytes(const Keys& k, CheckpointQuantization& q) {
  // transformers writes both the property (load_in_4bit) and the field behind it (_load_in_4bit).
  const bool in4 = k.get_bool("load_in_4bit", k.get_bool("_load_in_4bit", false));
  const bool in8 = k.get_bool("load_in_8bit", k.get_bool("_load_in_8bit", false));
  if (in4 == in8)
    fail("{}: quantization_config with quant_method 'bitsandbytes' must set exactly one of "
         "load_in_4bit and load_in_8bit to true (got {} and {})", k.file, in4, in8);
  if (in8) {
    q.format = CheckpointFormat::bnb_8bit;
    q.threshold = k.get_double("llm_int8_threshold", 6.0);
    if (q.threshold < 0)
      fail("{} must be at least 0, got {}", k.where("llm_int8_threshold"), q.threshold);
    if (k.get_bool("llm_int8_has_fp16_weight", false))
      fail("{} is true: the checkpoint keeps fp16 weights for training, not int8 ones; qsweep "
           "reads int8 weights with their SCB", k.where("llm_int8_has_fp16_weight"));
    return;
  }
  q.format = CheckpointFormat::bnb_4bit;
  q.bnb_quant_type = k.get_string("bnb_4bit_quant_type", "fp4", {"nf4", "fp4"});
  q.double_quant = k.get_bool("bnb_4bit_use_double_quant", false);
  q.compute_dtype = dtype_key(k, "bnb_4bit_compute_dtype", "float32");
  // Other storages (bfloat16 for FSDP) hold the same nibbles in wider words; none is read here.
  k.get_string("bnb_4bit_quant_storage", "uint8", {"uint8"});
}

void read_gptq(const Keys& k, CheckpointQuantization& q) {
  q.format = CheckpointFormat::gptq;
  if (!k.has("bits")) fail("{} is missing (GPTQConfig requires it)", k.where("bits"));
  const long long bits = k.get_int("bits", 4);
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    fail("{} must be one of 2, 3, 4, 8, got {}", k.where("bits"), bits);
  q.bits = static_cast<int>(bits);
  const long long group_size = k.get_int("group_size", 128);
  if (group_size != -1 && group_size <= 0)
    fail("{} must be positive or -1 (one group per output channel), got {}",
         k.where("group_size"), group_size);
  q.group_size = static_cast<int>(group_size);
  q.sym = k.get_bool("sym", true);
  q.desc_act = k.get_bool("desc_act", false);
  // GPTQConfig calls it `format` now and reads the older `checkpoint_format` too.
  const std::vector<std::string> formats = {"gptq", "gptq_v2"};
  const std::string key = k.has("checkpoint_format") ? "checkpoint_format" : "format";
  q.zeros_minus_one = k.get_string(key, "gptq", formats) == "gptq";
  q.lm_head = k.get_bool("lm_head", false);
}

// transformers' AwqConfig as AutoAWQ writes it; only the GEMM layout (4-bit, zero points)
// is read, the one AutoAWQ saves by default.
void read_awq(const Keys& k, CheckpointQuantization& q) {
  q.format = CheckpointFormat::awq_gemm;
  const long long bits = k.get_int("bits", 4);
  if (bits != 4) fail("{} must be 4 for AWQ's GEMM layout, got {}", k.where("bits"), bits);
  q.bits = 4;
  const long long group_size = k.get_int("group_size", 128);
  if (group_size != -1 && group_size <= 0)
    fail("{} must be positive or -1, got {}", k.where("group_size"), group_size);
  q.group_size = static_cast<int>(group_size);
  if (!k.get_bool("zero_point", true))
    fail("{} is false; qsweep reads AWQ checkpoints with zero points (AutoAWQ's default)",
         k.where("zero_point"));
  q.sym = false;
  k.get_string("version", "gemm", {"gemm"});
}

json bitsandbytes_json(const CheckpointQuantization& q) {
  // BitsAndBytesConfig.to_dict(): every field, the private _load_in_* included.
  const bool in4 = q.format == CheckpointFormat::bnb_4bit;
  return {{"quant_method", "bitsandbytes"},
          {"_load_in_4bit", in4},
          {"_load_in_8bit", !in4},
          {"load_in_4bit", in4},
          {"load_in_8bit", !in4},
          {"llm_int8_threshold", q.threshold},
          // None makes transformers skip lm_head; an empty list quantizes every linear.
          {"llm_int8_skip_modules", q.lm_head ? json::array() : json(nullptr)},
          {"llm_int8_enable_fp32_cpu_offload", false},
          {"llm_int8_has_fp16_weight", false},
          {"bnb_4bit_quant_type", q.bnb_quant_type},
          {"bnb_4bit_use_double_quant", q.double_quant},
          {"bnb_4bit_compute_dtype", hf_dtype_name(q.compute_dtype)},
          {"bnb_4bit_quant_storage", "uint8"}};
}

json gptq_json(const CheckpointQuantization& q) {
  return {{"quant_method", "gptq"},
          {"bits", q.bits},
          {"group_size", q.group_size},
          {"desc_act", q.desc_act},
          {"sym", q.sym},
          {"lm_head", q.lm_head},
          {"checkpoint_format", q.zeros_minus_one ? "gptq" : "gptq_v2"},
          {"meta", {{"quantizer", {"qsweep"}}}}};
}

}  // namespace

const char* checkpoint_format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::none: return "none";
    case CheckpointFormat::bnb_4bit: return "bitsandbytes 4-bit";
    case CheckpointFormat::bnb_8bit: return "bitsandbytes 8-bit";
    case CheckpointFormat::gptq: return "gptq";
    case CheckpointFormat::awq_gemm: return "awq (gemm)";
  }
  return "?";
}

CheckpointQuantization read_checkpoint_quantization(const std::string& model_dir) {
  CheckpointQuantization q;
  q.source = model_dir + "/config.json";
  if (!std::filesystem::exists(q.source)) return q;  // load_model_config says what is missing
  json j;
  try {
    j = json::parse(read_file(q.source));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON ({})", q.source, e.what());
  }
  if (!j.contains("quantization_config") || j["quantization_config"].is_null()) return q;
  const json& qc = j["quantization_config"];
  if (!qc.is_object())
    fail("{}: key 'quantization_config' must be an object, got {}", q.source, qc.dump());
  const Keys k{qc, q.source};
  // Configs written before quant_method existed are bitsandbytes ones (transformers assumes so).
  std::string method = "bitsandbytes";
  if (k.has("quant_method")) {
    if (!qc["quant_method"].is_string())
      fail("{} must be a string, got {}", k.where("quant_method"), qc["quant_method"].dump());
    method = qc["quant_method"].get<std::string>();
  } else if (!k.has("load_in_4bit") && !k.has("load_in_8bit")) {
    fail("{} is missing; {}", k.where("quant_method"), kSupported);
  }
  if (method == "bitsandbytes")
    read_bitsandbytes(k, q);
  else if (method == "gptq")
    read_gptq(k, q);
  else if (method == "awq")
    read_awq(k, q);
  else
    fail("{} is '{}', which qsweep cannot read; {}", k.where("quant_method"), method, kSupported);
  return q;
}

std::string config_json_with_quantization(const std::string& config_json,
                                          const CheckpointQuantization& q, DType dtype) {
  json j = json::parse(config_json);
  j["torch_dtype"] = hf_dtype_name(dtype);
  if (q.lm_head) j["tie_word_embeddings"] = false;
  switch (q.format) {
    case CheckpointFormat::bnb_4bit:
    case CheckpointFormat::bnb_8bit: j["quantization_config"] = bitsandbytes_json(q); break;
    case CheckpointFormat::gptq: j["quantization_config"] = gptq_json(q); break;
    case CheckpointFormat::awq_gemm:
      fail("qsweep writes int groups in GPTQ's layout, not AWQ's GEMM layout");
    case CheckpointFormat::none: j.erase("quantization_config"); break;
  }
  return j.dump(2) + "\n";
}

}  // namespace qsweep
