#pragma once
// Results in the shape lm-eval writes them, so tools that read lm-eval output read qsweep's:
// one results JSON per config and one JSON line per sample (as --log_samples). What lm-eval
// does not report (intervals, paired comparisons) sits under the separate key "qsweep".
#include "qsweep/util/results.h"
#include "qsweep/eval/stats.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace qsweep {

struct SampleCounts {
  size_t original = 0;   // samples in the data set (stories in lm_eval mode, turns in official)
  size_t effective = 0;  // samples evaluated, after the limit
};

// {"results": {"coqa": {em, em_stderr, f1, f1_stderr, alias}}, "config": config_fields,
//  "n-samples": {"coqa": {original, effective}}, "versions", "n-shot", "higher_is_better",
//  "qsweep": {intervals, paired comparisons, bootstrap settings}}.
// A standard error lm-eval cannot compute (one sample) is written "N/A", as lm-eval does.
nlohmann::json lm_eval_results_json(const ConfigMetrics& metrics, const SampleCounts& counts,
                                    const nlohmann::json& config_fields,
                                    const BootstrapOptions& bootstrap);

// One sample as a single JSON line (no newline): id, turn, source, prompt_sha256, prediction,
// golds, em, f1, prompt_tokens, generated_tokens, stop_reason. Invalid UTF-8 in a prediction is
// written as U+FFFD rather than failing the unit.
std::string sample_json_line(const SampleRecord& sample);
// The inverse, for reading a baseline's samples back; throws Error naming the missing field.
SampleRecord sample_from_json_line(std::string_view line);

}  // namespace qsweep
