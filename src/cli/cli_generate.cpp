// qsweep generate: greedy continuation of prompts, for a quick look at a model and for the
// parity checks against transformers (tests/parity/), which read --json and --out.
#include "cli.h"
#include "qsweep/bench/device.h"
#include "qsweep/model/engine.h"
#include "qsweep/util/error.h"
#include "qsweep/model/generate.h"
#include "qsweep/util/log.h"
#include "qsweep/model/model.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/model/kv_cache_size.h"
#include "qsweep/model/safetensors.h"
#include "qsweep/util/text.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <algorithm>
#include <iostream>

namespace qsweep::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::vector<std::string> prompts;
  std::string prompts_file;
  DType dtype = DType::fp32;
  std::string device = "auto";
  bool no_special = false;
  bool json = false;
  std::string logits_out;
  GenerateOptions options;
  Deprecations deprecations;
};

std::vector<std::string> read_prompts_file(const std::string& path) {
  std::vector<std::string> prompts;
  std::ifstream in(path);
  if (!in) fail("{}: cannot read the prompts file", path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      prompts.push_back(nlohmann::json::parse(line).get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: each line must be a JSON string ({})", path, n, e.what());
    }
  }
  return prompts;
}

// Logits at the last prompt token, each prompt alone (batch 1), as float32 rows.
at::Tensor last_token_logits(const Model& m, const std::vector<std::vector<int32_t>>& ids) {
  c10::InferenceMode guard;
  std::vector<at::Tensor> rows;
  for (const auto& p : ids) rows.push_back(forward_sequence(m, p, true).view({-1}).to(at::kFloat));
  return at::stack(rows);
}

void run(GenerateArgs& a) {
  if (!a.prompts_file.empty()) {
    const auto more = read_prompts_file(a.prompts_file);
    a.prompts.insert(a.prompts.end(), more.begin(), more.end());
  }
  if (a.prompts.empty()) fail("no prompt: give --prompt TEXT or --prompts-file FILE.jsonl");
  const Tokenizer tok = Tokenizer::from_model_dir(a.model);
  std::vector<std::vector<int32_t>> ids;
  size_t longest = 0;
  for (const auto& p : a.prompts) {
    ids.push_back(tok.encode(p, !a.no_special));
    longest = std::max(longest, ids.back().size());
  }
  const at::Device device = choose_device(a.device, 0);
  const int64_t batch = std::min<int64_t>(a.options.batch_size, static_cast<int64_t>(ids.size()));
  check_kv_cache_fits(kv_cache_bytes(load_model_config(a.model), batch,
                                     static_cast<int64_t>(longest) + a.options.max_new_tokens,
                                     static_cast<int>(c10::elementSize(scalar_type(a.dtype)))),
                      device, fmt::format("--max-new-tokens {} with --batch-size {}",
                                          a.options.max_new_tokens, a.options.batch_size));
  Model m = load_model(a.model, {a.dtype, device});
  stack_projections(m);

  const auto start = std::chrono::steady_clock::now();
  const std::vector<Generation> out = generate(m, tok, ids, a.options);
  synchronize(m.device);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t generated = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    generated += out[i].tokens.size();
    if (a.json) {
      nlohmann::json j = {{"prompt", a.prompts[i]},       {"prompt_ids", ids[i]},
                          {"tokens", out[i].tokens},      {"text", out[i].text},
                          {"stop_reason", stop_reason_name(out[i].stop_reason)}};
      std::cout << j.dump() << "\n";
    } else {
      std::cout << out[i].text << "\n";
    }
  }
  log_info("{} prompt(s), {} new tokens in {:.2f} s on {} ({})", out.size(), generated, seconds,
           device_description(m.device), dtype_name(a.dtype));
  if (!a.logits_out.empty()) write_safetensors(a.logits_out, {{"logits", last_token_logits(m, ids)}});
}

}  // namespace

void add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Greedy generation from a model directory");
  cmd->add_option("--model", a->model, "Hugging Face model directory")->required();
  cmd->add_option("--prompt", a->prompts, "Prompt text (repeatable)");
  cmd->add_option("--prompts-file", a->prompts_file, "JSON lines file, one JSON string each");
  cmd->add_option("--max-new-tokens", a->options.max_new_tokens, "Tokens to generate at most")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--stop", a->options.stop, "Stop string (repeatable), e.g. $'\\nQ:'");
  cmd->add_option("--batch-size", a->options.batch_size, "Prompts per batch")
      ->check(at_least(1))->capture_default_str();
  add_dtype_option(cmd, a->dtype, "Compute dtype: fp32, fp16 or bf16");
  cmd->add_option("--device", a->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  CLI::Option* no_bos = cmd->add_flag(
      "--no-bos,!--add-bos", a->no_special,
      "--no-bos: encode prompts without BOS (the tokenizer post-processor's special tokens); "
      "--add-bos, the default, with it");
  add_deprecated_flag(cmd, "--no-special", no_bos, a->no_special, a->deprecations);
  cmd->add_flag("--json", a->json, "One JSON object per prompt: ids, tokens, text, stop reason");
  CLI::Option* out = cmd->add_option(
      "--out", a->logits_out,
      "Safetensors file for the logits at each prompt's last token, [prompts, vocab] float32 "
      "(the text goes to stdout)");
  add_deprecated_option(cmd, "--logits-out", out, a->logits_out, a->deprecations);
  cmd->callback([a] {
    init_command_logging(false);
    a->deprecations.warn();
    run(*a);
  });
}

}  // namespace qsweep::cli
