// qsweep make-model: a random-init Llama of a preset shape, written as a Hugging Face directory
// with the given tokenizer, so transformers and qsweep both load it.
#include "cli.h"
#include "qsweep/bench/device.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <filesystem>

namespace qsweep::cli {
namespace {

struct MakeModelArgs {
  std::string preset = "tiny";
  std::string tokenizer;
  uint64_t seed = 0;
  double init_std = 0.02;
  DType dtype = DType::fp32;
  int outliers = 0;
  double outlier_scale = 20.0;
  std::string out;
};

// EOS ids as Llama 3 base models list them: the tokenizer's eos plus <|end_of_text|> if present.
std::vector<int> eos_ids_for(const Tokenizer& tok) {
  std::vector<int> ids;
  if (auto eos = tok.eos_id()) ids.push_back(*eos);
  for (const char* name : {"<|end_of_text|>", "</s>"})
    if (auto id = tok.token_to_id(name); id && (ids.empty() || ids[0] != *id)) ids.push_back(*id);
  return ids;
}

void run(const MakeModelArgs& a) {
  namespace fs = std::filesystem;
  const fs::path tokenizer_dir = fs::path(a.tokenizer).parent_path();
  const fs::path tokenizer_config = tokenizer_dir / "tokenizer_config.json";
  const Tokenizer tok = Tokenizer::from_files(
      a.tokenizer, fs::exists(tokenizer_config) ? tokenizer_config.string() : "");
  ModelConfig config = model_preset(a.preset, static_cast<int>(tok.vocab_size()));
  config.bos_token_id = tok.bos_id().value_or(-1);
  config.eos_token_ids = eos_ids_for(tok);
  RandomInit init;
  init.seed = a.seed;
  init.std = a.init_std;
  init.save_dtype = scalar_type(a.dtype);
  init.outliers = a.outliers;
  init.outlier_scale = a.outlier_scale;
  write_random_model(config, init, a.out);
  fs::copy_file(a.tokenizer, fs::path(a.out) / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  if (fs::exists(tokenizer_config))
    fs::copy_file(tokenizer_config, fs::path(a.out) / "tokenizer_config.json",
                  fs::copy_options::overwrite_existing);
  log_info("wrote {} ({} preset, {} layers, hidden {}, vocab {}, seed {})", a.out, a.preset,
           config.num_layers, config.hidden_size, config.vocab_size, a.seed);
  if (a.outliers > 0)
    log_info("outlier dimensions (layer norms x{}): {}", a.outlier_scale,
             fmt::join(outlier_dims(init, config.hidden_size), ", "));
}

}  // namespace

void add_make_model(CLI::App& app) {
  auto args = std::make_shared<MakeModelArgs>();
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a random-init Llama model as a Hugging Face directory");
  cmd->add_option("--preset", args->preset, "Model shape")
      ->check(CLI::IsMember(model_preset_names()))
      ->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json to ship with the model")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--seed", args->seed, "Random seed")->capture_default_str();
  cmd->add_option("--init-std", args->init_std, "Standard deviation of the weights")
      ->capture_default_str();
  add_dtype_option(cmd, args->dtype, "Saved weight dtype: fp32, fp16 or bf16");
  cmd->add_option("--outliers", args->outliers,
                  "Hidden dimensions given large activations (LLM.int8 outlier features)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--outlier-scale", args->outlier_scale,
                  "Layer-norm weight of the outlier dimensions")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "Output directory")->required();
  cmd->callback([args] {
    init_command_logging(false);
    run(*args);
  });
}

}  // namespace qsweep::cli
