#pragma once
// How a config quantizes the model: one enum for the method and the parameters the methods
// take, plain data parsed from the job file (docs/sweep-spec.md) and validated before any work.
// The method decides how weights are chosen; the storage format it produces (model/linear.h)
// is a consequence: rtn, gptq and awq give int-group weights, bnb_* 4-bit blocks, llm_int8
// int8 rows.
#include "qsweep/util/dtype.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qsweep {

enum class QuantMethod { none, rtn, bnb_nf4, bnb_fp4, llm_int8, gptq, awq, from_checkpoint };

inline constexpr QuantMethod kAllQuantMethods[] = {
    QuantMethod::none,     QuantMethod::rtn,  QuantMethod::bnb_nf4, QuantMethod::bnb_fp4,
    QuantMethod::llm_int8, QuantMethod::gptq, QuantMethod::awq,     QuantMethod::from_checkpoint};

const char* quant_method_name(QuantMethod method);
std::optional<QuantMethod> parse_quant_method(std::string_view name);

// The calibration set of gptq and awq: `samples` windows of `seq_len` tokens drawn from a text
// file with a seeded generator (calibration.h). Its identity (the file's sha256, N, L, seed) is
// part of the config's fingerprint.
struct CalibrationSpec {
  std::string text;            // absolute path
  std::string text_sha256;
  int samples = 128;
  int seq_len = 0;             // 0: the method's default, capped at the model's context
  uint64_t seed = 0;
};

// The reference implementations' window lengths: IST-DASLab/gptq calibrates on 128 x 2048
// tokens, llm-awq and AutoAWQ on 128 x 512 (its grid search replays each block 20 times, so
// it pays for every token 20-fold).
inline constexpr int kGptqSeqLen = 2048;
inline constexpr int kAwqSeqLen = 512;

struct QuantConfig {
  QuantMethod method = QuantMethod::none;
  // rtn, gptq, awq: integer codes in groups of input channels (-1: one group per row).
  int bits = 4;
  int group_size = 128;
  bool sym = true;
  // bnb_nf4, bnb_fp4: absmax block and double quantization of the absmax values.
  int blocksize = 64;
  bool double_quant = false;
  // llm_int8: input columns with a magnitude above this run in the compute dtype.
  double threshold = 6.0;
  // The dtype quantized layers compute in (bitsandbytes' compute_dtype); none: the config's.
  std::optional<DType> compute_dtype;
  // Embeddings, norms and lm_head stay in the compute dtype unless this is set.
  bool quantize_lm_head = false;
  // gptq: dampening (fraction of the mean Hessian diagonal), act-order, groups fixed up front.
  double damp_percent = 0.01;
  bool desc_act = false;
  bool static_groups = false;
  // awq: search a clipping threshold per group after scaling.
  bool clip = true;
  CalibrationSpec calibration;  // gptq, awq
};

// Whether the method chooses weights from calibration data (gptq, awq).
bool needs_calibration(QuantMethod method);
// The window length a config calibrates on: its own, or its method's default, at most `context`.
int calibration_seq_len(const QuantConfig& config, int context);

// The values each parameter may take, as the libraries the methods come from accept them.
inline constexpr int kIntBits[] = {2, 3, 4, 8};
inline constexpr int kIntGroupSizes[] = {32, 64, 128, -1};
// bitsandbytes' functional.py quantize_4bit.
inline constexpr int kBnb4Blocksizes[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};

// The YAML keys a method reads (besides method, dtype, model): any other quantization key on a
// config of that method is an error, so a typo or a misplaced parameter never passes silently.
const std::vector<std::string>& quant_keys_of(QuantMethod method);

// Weights per stored byte, for planning: nominal bits per weight of the quantized layers
// including scales, zeros and absmax state (e.g. NF4 + double quant, block 64: 4.127).
double nominal_bits_per_weight(const QuantConfig& config);

}  // namespace qsweep
