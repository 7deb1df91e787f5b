#include "qsweep/eval/lm_eval_json.h"

#include "qsweep/util/error.h"
#include "qsweep/util/results_json.h"

#include <cmath>

namespace qsweep {
namespace {

using nlohmann::json;

// lm-eval's coqa task version (default.yaml metadata.version), reported so readers can tell
// which prompt and scoring the numbers come from.
constexpr double kCoqaTaskVersion = 3.0;

json number_or_null(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

json interval_json(const Interval& i) {
  return json::array({number_or_null(i.lo), number_or_null(i.hi)});
}

json summary_json(const MeanSummary& s) {
  return {{"n", s.n},
          {"mean", s.mean},
          {"stderr", number_or_null(s.stderr_)},
          {"t95", interval_json(s.t95)},
          {"bca95", interval_json(s.bca95)}};
}

json comparison_json(const PairedComparison& c) {
  return {{"baseline", c.baseline},
          {"n", c.n},
          {"mean_delta", c.mean_delta},
          {"bca95", interval_json(c.bca95)},
          {"p_value", c.p_value}};
}

json stderr_json(double v) { return std::isnan(v) ? json("N/A") : json(v); }

}  // namespace

json lm_eval_results_json(const ConfigMetrics& metrics, const SampleCounts& counts,
                          const json& config_fields, const BootstrapOptions& bootstrap) {
  json extras = {
      {"config", metrics.config},
      {"em", summary_json(metrics.em)},
      {"f1", summary_json(metrics.f1)},
      {"bootstrap", {{"resamples", bootstrap.resamples}, {"seed", bootstrap.seed}}},
      {"methods",
       {{"stderr", "sample standard deviation (ddof=1) / sqrt(n), as lm-eval"},
        {"t95", "mean +- t(0.975, n-1) * stderr"},
        {"bca95", "BCa bootstrap of the mean, jackknife acceleration (scipy's definition)"},
        {"vs_baseline",
         "paired by (id, turn): BCa bootstrap of mean(config - baseline); two-sided p = "
         "(1 + #{|mean*_b - mean| >= |mean|}) / (B + 1), deltas centred under H0"}}}};
  if (metrics.em_vs_baseline) extras["em_vs_baseline"] = comparison_json(*metrics.em_vs_baseline);
  if (metrics.f1_vs_baseline) extras["f1_vs_baseline"] = comparison_json(*metrics.f1_vs_baseline);
  return {{"results",
           {{"coqa",
             {{"alias", "coqa"},
              // lm-eval 0.4 names a metric "<metric>,<filter>"; coqa uses the "none" filter.
              {"em,none", metrics.em.mean},
              {"em_stderr,none", stderr_json(metrics.em.stderr_)},
              {"f1,none", metrics.f1.mean},
              {"f1_stderr,none", stderr_json(metrics.f1.stderr_)}}}}},
          {"config", config_fields},
          {"n-samples", {{"coqa", {{"original", counts.original}, {"effective", counts.effective}}}}},
          {"versions", {{"coqa", kCoqaTaskVersion}}},
          {"n-shot", {{"coqa", 0}}},
          {"higher_is_better", {{"coqa", {{"em", true}, {"f1", true}}}}},
          {"qsweep", extras}};
}

std::string sample_json_line(const SampleRecord& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

SampleRecord sample_from_json_line(std::string_view line) {
  try {
    return json::parse(line).get<SampleRecord>();
  } catch (const json::exception& e) {
    fail("sample line is not a qsweep sample record ({}): {:.200}; write samples with "
         "sample_json_line", e.what(), line);
  }
}

}  // namespace qsweep
