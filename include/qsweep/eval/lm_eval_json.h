#pragma once
// Results in the files lm-evaluation-harness 0.4 writes with `--output_path DIR --log_samples`,
// so its results table, W&B logger and Zeno exporter read qsweep's: DIR/<model_name_sanitized>/
// results_<date>.json and samples_<task>_<date>.jsonl. What lm-eval does not report (intervals,
// paired comparisons) sits under the separate key "qsweep".
#include "qsweep/eval/coqa.h"
#include "qsweep/eval/stats.h"
#include "qsweep/util/results.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qsweep {

struct SampleCounts {
  size_t original = 0;   // samples in the data set (stories in lm_eval mode, turns in official)
  size_t effective = 0;  // samples evaluated, after the limit
};

// What lm-eval's evaluator and evaluation tracker record about one run (one config).
struct LmEvalRun {
  std::string model_name;         // the model directory: lm-eval's `pretrained=` value
  std::string model_args;         // "pretrained=DIR,dtype=bf16,method=bnb_nf4,...": per config
  CoqaMode mode = CoqaMode::lm_eval;
  std::string coqa_file;
  int batch_size = 1;
  std::string device;
  std::optional<int> limit;       // stories
  int max_gen_toks = kCoqaMaxGenTokens;
  std::vector<std::string> until = {std::string(kCoqaStopSequence)};
  BootstrapOptions bootstrap;     // its seed is the only random seed a run uses
  std::string git_hash;
  double start_time = 0;          // unix seconds
  double end_time = 0;
  SampleCounts counts;
  bool log_samples = true;        // write the samples file (lm-eval's --log_samples)
};

// The task a mode is reported as. lm_eval mode is lm-eval's `coqa` v3.0; the official all-turns
// mode is another task (every turn a sample, the official script's golds), so it gets its own.
const char* lm_eval_task_name(CoqaMode mode);  // "coqa" or "coqa_official_turns"
double lm_eval_task_version(CoqaMode mode);    // 3.0 or 1.0

// lm-eval's sanitize_model_name: every run of the characters "<>:/|\?*[] becomes "__".
std::string lm_eval_sanitize_model_name(std::string_view name);
// Python's repr() of a list of str, which is what lm-eval writes as a sample's `target` (and
// hashes into target_hash). Non-ASCII characters are printed as is except Unicode spaces, which
// Python escapes; format characters (category Cf) are the one case written differently.
std::string python_repr(const std::vector<std::string>& strings);

// The stories of a CoQA file as documents of the EleutherAI/coqa dataset lm-eval loads (its
// feature order: id, source, story, questions, answers, additional_answers, each a dict of
// per-turn lists), so a sample's `doc` and doc_hash are lm-eval's.
std::vector<nlohmann::ordered_json> lm_eval_coqa_docs(std::string_view coqa_json_text,
                                                      const std::string& path);

// One line of samples_<task>_<date>.jsonl: doc_id, doc, target, arguments, resps,
// filtered_resps, filter, metrics, doc_hash, prompt_hash, target_hash, em, f1, and "qsweep"
// (answer: the scored text; resps_from). resps is lm-eval's: the generation cut before the first
// stop string, and filtered_resps the same text (coqa's "none" filter takes the first response;
// process_results strips it and keeps the first line). A record without its generation (a store
// from before qsweep kept it) has its answer there instead, resps_from "answer".
nlohmann::ordered_json lm_eval_sample_json(const nlohmann::ordered_json& doc, size_t doc_id,
                                           const CoqaSample& sample, const SampleRecord& record,
                                           const LmEvalRun& run);

// The results file: results, group_subtasks, configs (the task config), versions, n-shot,
// higher_is_better, n-samples, config (model, model_args, batch_size, device, limit,
// bootstrap_iters, gen_kwargs, seeds), git_hash, date, task_hashes, model_name,
// model_name_sanitized, start_time, end_time, total_evaluation_time_seconds, and "qsweep".
// `samples` are the lines of the samples file (for task_hashes). A standard error lm-eval cannot
// compute (one sample) is written "N/A", as lm-eval does.
nlohmann::ordered_json lm_eval_results_json(const ConfigMetrics& metrics, const LmEvalRun& run,
                                            const std::vector<nlohmann::ordered_json>& samples);

// Writes the results file (and the samples file when run.log_samples) under output_path/<model_name_sanitized>/, dated with the end time as lm-eval
// dates them (ISO 8601, ':' as '-'). Every record must match a sample by (id, turn) and prompt
// hash; one that does not means the CoQA file changed since the run, and throws Error.
// Returns the results file's path.
std::string write_lm_eval_output(const std::string& output_path, const LmEvalRun& run,
                                 const ConfigMetrics& metrics,
                                 const std::vector<nlohmann::ordered_json>& docs,
                                 const std::vector<CoqaSample>& samples,
                                 const std::vector<SampleRecord>& records);

}  // namespace qsweep
