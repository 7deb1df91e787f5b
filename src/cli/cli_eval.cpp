// qsweep eval: one model, one config, over a CoQA file, scored as lm-eval's `coqa`; prints the
// metrics with their intervals and writes lm-eval-style results and per-sample logs.
#include "cli.h"
#include "qsweep/eval/coqa.h"
#include "qsweep/bench/device.h"
#include "qsweep/util/error.h"
#include "qsweep/eval/evaluate.h"
#include "qsweep/eval/lm_eval_json.h"
#include "qsweep/util/log.h"
#include "qsweep/model/model.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/model/kv_cache_size.h"
#include "qsweep/eval/scoring.h"
#include "qsweep/eval/stats.h"
#include "qsweep/util/text.h"
#include "qsweep/tokenizer/tokenizer.h"
#include "qsweep_version.h"

#include <chrono>
#include <fstream>
#include <limits>
#include <iostream>

namespace qsweep::cli {
namespace {

struct EvalArgs {
  std::string model;
  std::string coqa;
  std::optional<size_t> limit;
  std::string mode = "lm_eval";
  std::string dtype = "auto";
  std::string device = "auto";
  bool log_samples = false;
  std::string output_path;
  Deprecations deprecations;
  EvalOptions options;
  BootstrapOptions bootstrap;
};

// The samples of the first --limit stories (all without a limit).
std::vector<CoqaSample> select_samples(const std::vector<CoqaSample>& all, const EvalArgs& a) {
  return samples_of_stories(all, {0, a.limit ? *a.limit : std::numeric_limits<size_t>::max()});
}

void print_metrics(const ConfigMetrics& m) {
  auto line = [](const char* name, const MeanSummary& s) {
    std::cout << fmt::format("{:<3} {:.4f}  stderr {:.4f}  t95 [{:.4f}, {:.4f}]  BCa95 [{:.4f}, {:.4f}]\n",
                             name, s.mean, s.stderr_, s.t95.lo, s.t95.hi, s.bca95.lo, s.bca95.hi);
  };
  std::cout << fmt::format("coqa ({} samples)\n", m.em.n);
  line("em", m.em);
  line("f1", m.f1);
}

LmEvalRun lm_eval_run(const EvalArgs& a, DType dtype, const std::string& device, double started_at,
                      double seconds, SampleCounts counts) {
  LmEvalRun run;
  run.model_name = a.model;
  run.model_args = fmt::format("pretrained={},dtype={}", a.model, dtype_name(dtype));
  run.mode = parse_coqa_mode(a.mode);
  run.coqa_file = a.coqa;
  run.batch_size = a.options.generation.batch_size;
  run.device = device;
  if (a.limit) run.limit = static_cast<int>(*a.limit);
  run.max_gen_toks = a.options.generation.max_new_tokens;
  run.until = a.options.generation.stop;
  run.bootstrap = a.bootstrap;
  run.git_hash = QSWEEP_GIT_HASH;
  run.start_time = started_at;
  run.end_time = started_at + seconds;
  run.counts = counts;
  run.log_samples = a.log_samples;
  return run;
}

void run(const EvalArgs& a) {
  const CoqaData data = load_coqa(a.coqa);
  if (data.info.is_official_dev) log_info("{}: the official CoQA dev set (sha256 verified)", a.coqa);
  if (data.info.dev_name_mismatch)
    log_warning("{} is named like the CoQA dev set but its sha256 {} differs from the published "
                "{}: results will not compare with lm-eval's", a.coqa, data.info.sha256, kCoqaDevSha256);
  const std::vector<CoqaSample> all = build_samples(data.stories, parse_coqa_mode(a.mode));
  const std::vector<CoqaSample> samples = select_samples(all, a);
  const Tokenizer tok = Tokenizer::from_model_dir(a.model);
  const at::Device device = choose_device(a.device, 0);
  const ModelConfig config = load_model_config(a.model);
  const DType dtype = compute_dtype(a.dtype, config.torch_dtype, device.is_cuda());
  // The prompts come on top of this; what the answers alone need must fit already.
  const GenerateOptions& g = a.options.generation;
  check_kv_cache_fits(kv_cache_bytes(config, g.batch_size, g.max_new_tokens,
                                     static_cast<int>(c10::elementSize(scalar_type(dtype)))),
                      device, fmt::format("--max-new-tokens {} with --batch-size {}",
                                          g.max_new_tokens, g.batch_size));
  Model m = load_model(a.model, {dtype, device});
  stack_projections(m);
  const double started_at = std::chrono::duration<double>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<SampleRecord> records = evaluate_samples(m, tok, samples, a.options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log_info("{} samples in {:.1f} s on {} ({})", records.size(), seconds, device_description(m.device), dtype_name(dtype));

  const ConfigMetrics metrics = compute_config_metrics(dtype_name(dtype), records, nullptr, a.bootstrap);
  print_metrics(metrics);
  if (a.mode == "official")
    for (const DomainScore& d : official_domain_scores(records))
      std::cout << fmt::format("  {:<18} turns {:>5}  em {:5.1f}  f1 {:5.1f}\n", d.name, d.turns,
                               official_percent(d.em), official_percent(d.f1));
  if (a.output_path.empty()) return;
  const LmEvalRun run = lm_eval_run(a, dtype, device_description(m.device), started_at, seconds,
                                    {all.size(), records.size()});
  const std::string path = write_lm_eval_output(a.output_path, run, metrics,
                                                lm_eval_coqa_docs(read_file(a.coqa), a.coqa),
                                                all, records);
  log_info("lm-eval results: {}", path);
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate one model on CoQA as lm-eval's `coqa` scores it");
  cmd->add_option("--model", a->model, "Hugging Face model directory")->required();
  cmd->add_option("--coqa", a->coqa, "CoQA JSON (official dev format)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--limit", a->limit, "Evaluate the first N stories only (lm-eval --limit)")
      ->check(at_least(1));
  cmd->add_option("--mode", a->mode, "lm_eval (last turn per story) or official (every turn)")
      ->check(CLI::IsMember({"lm_eval", "official"}))->capture_default_str();
  add_compute_dtype_option(cmd, a->dtype);
  cmd->add_option("--device", a->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch-size", a->options.generation.batch_size, "Prompts per batch")
      ->check(at_least(1))->capture_default_str();
  cmd->add_option("--max-new-tokens", a->options.generation.max_new_tokens,
                  "Tokens generated per answer at most (lm-eval's max_gen_toks)")
      ->check(at_least(1))->capture_default_str();
  cmd->add_flag("--add-bos,!--no-bos", a->options.add_bos,
                "--add-bos: encode prompts with BOS; --no-bos, the default, without (as lm-eval's "
                "Hugging Face backend)");
  cmd->add_option("--bootstrap-resamples", a->bootstrap.resamples,
                  "Bootstrap resamples of the BCa intervals")->capture_default_str();
  cmd->add_option("--seed", a->bootstrap.seed, "Bootstrap seed")->capture_default_str();
  // --output_path and --log_samples are lm-eval's own spellings, kept for its users' scripts.
  CLI::Option* out = cmd->add_option("--out,--output_path", a->output_path,
                  "Write lm-eval's files: DIR/<model_name_sanitized>/results_<date>.json");
  add_deprecated_option(cmd, "--output-path", out, a->output_path, a->deprecations);
  cmd->add_flag("--log-samples,--log_samples", a->log_samples,
                "With --out, also samples_<task>_<date>.jsonl (lm-eval's per-sample records)")
      ->needs(out);
  cmd->callback([a] {
    init_command_logging(false);
    a->deprecations.warn();
    run(*a);
  });
}

}  // namespace qsweep::cli
