// qsweep quantize: one config (a preset file's keys) applied to a model, written as a pre-quantized
// Hugging Face directory in the format the ecosystem loads (bitsandbytes 4-bit and 8-bit, GPTQ).
#include "cli.h"
#include "qsweep/model/checkpoint_quantization.h"
#include "qsweep/model/model.h"
#include "qsweep/model/quantized_checkpoint.h"
#include "qsweep/quant/calibration.h"
#include "qsweep/quant/quantize_model.h"
#include "qsweep/tokenizer/tokenizer.h"
#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"

#include <c10/core/InferenceMode.h>

#include <chrono>

namespace qsweep::cli {
namespace {

struct QuantizeArgs {
  std::string model;
  std::string config;
  std::string out;
  bool verbose = false;
};

void run(const QuantizeArgs& a) {
  const PrepConfig c = load_config_file(a.config);
  if (!c.model.empty())
    fail("{}: key 'model': qsweep quantize takes the model from --model; remove the key",
         a.config);
  switch (c.quant.method) {
    case QuantMethod::rtn:
    case QuantMethod::gptq:
    case QuantMethod::awq:
    case QuantMethod::bnb_nf4:
    case QuantMethod::bnb_fp4:
    case QuantMethod::llm_int8: break;
    case QuantMethod::none:
    case QuantMethod::from_checkpoint:
      fail("{}: key 'method': '{}' cannot be written as a checkpoint by qsweep quantize; it "
           "writes rtn, gptq and awq (GPTQ layout), bnb_nf4 and bnb_fp4 (bitsandbytes 4-bit) and "
           "llm_int8 (bitsandbytes 8-bit)", a.config, quant_method_name(c.quant.method));
  }
  const CheckpointQuantization stored = read_checkpoint_quantization(a.model);
  if (stored.format != CheckpointFormat::none)
    fail("{}: the model is already quantized ({}); qsweep quantize starts from an unquantized "
         "checkpoint", stored.source, checkpoint_format_name(stored.format));

  c10::InferenceMode inference;
  const auto start = std::chrono::steady_clock::now();
  // The quantizers run on the CPU from the weight rounded to the compute dtype, so loading in
  // float32 gives the same codes as loading in the config's dtype, also on libtorch builds
  // without CPU half precision; the other tensors are written in the config's dtype.
  Model m = load_model(a.model, {DType::fp32, at::kCPU});
  QuantConfig q = c.quant;
  if (!q.compute_dtype) q.compute_dtype = c.dtype;
  at::Tensor calibration;
  if (needs_calibration(q.method))
    calibration = calibration_tokens(Tokenizer::from_model_dir(a.model), q.calibration,
                                     calibration_seq_len(q, m.config.max_position_embeddings));
  quantize_model(m, q, calibration);
  log_info("quantized {} with {} ({}): {:.3f} bits per weight in the projections, {:.1f} s",
           a.model, c.name, quant_method_name(q.method), projection_bits_per_weight(m),
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  write_quantized_checkpoint(m, a.model, c.dtype, a.out);
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Quantize a model with one config and write it as a Hugging Face checkpoint");
  cmd->add_option("--model", args->model, "Unquantized Hugging Face model directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--config", args->config,
                  "YAML file of one config's keys (method, dtype, bits, ...), e.g. "
                  "configs/quant/nf4_dq_fp16.yaml")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Output directory")->required();
  cmd->add_flag("-v,--verbose", args->verbose, "Debug logging");
  cmd->callback([args] {
    init_command_logging(args->verbose);
    run(*args);
  });
}

}  // namespace qsweep::cli
