#include "qsweep/lm_eval_json.h"

#include "qsweep/error.h"

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

template <typename T>
T field(const json& j, const char* key, std::string_view line) {
  const auto it = j.find(key);
  if (it == j.end())
    fail("sample line has no field '{}': {:.200}; write samples with sample_json_line", key, line);
  try {
    return it->get<T>();
  } catch (const json::exception& e) {
    fail("sample line field '{}' has the wrong type ({}): {:.200}", key, e.what(), line);
  }
}

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
              {"em", metrics.em.mean},
              {"em_stderr", stderr_json(metrics.em.stderr_)},
              {"f1", metrics.f1.mean},
              {"f1_stderr", stderr_json(metrics.f1.stderr_)}}}}},
          {"config", config_fields},
          {"n-samples", {{"coqa", {{"original", counts.original}, {"effective", counts.effective}}}}},
          {"versions", {{"coqa", kCoqaTaskVersion}}},
          {"n-shot", {{"coqa", 0}}},
          {"higher_is_better", {{"coqa", {{"em", true}, {"f1", true}}}}},
          {"qsweep", extras}};
}

std::string sample_json_line(const SampleRecord& s) {
  const json j = {{"id", s.id},
                  {"turn", s.turn},
                  {"source", s.source},
                  {"prompt_sha256", s.prompt_sha256},
                  {"prediction", s.prediction},
                  {"golds", s.golds},
                  {"em", s.em},
                  {"f1", s.f1},
                  {"prompt_tokens", s.prompt_tokens},
                  {"generated_tokens", s.generated_tokens},
                  {"stop_reason", s.stop_reason}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

SampleRecord sample_from_json_line(std::string_view line) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::parse_error& e) {
    fail("sample line is not JSON ({}): {:.200}", e.what(), line);
  }
  if (!j.is_object()) fail("sample line is not a JSON object: {:.200}", line);
  SampleRecord s;
  s.id = field<std::string>(j, "id", line);
  s.turn = field<int>(j, "turn", line);
  s.source = field<std::string>(j, "source", line);
  s.prompt_sha256 = field<std::string>(j, "prompt_sha256", line);
  s.prediction = field<std::string>(j, "prediction", line);
  s.golds = field<std::vector<std::string>>(j, "golds", line);
  s.em = field<double>(j, "em", line);
  s.f1 = field<double>(j, "f1", line);
  s.prompt_tokens = field<int>(j, "prompt_tokens", line);
  s.generated_tokens = field<int>(j, "generated_tokens", line);
  s.stop_reason = field<std::string>(j, "stop_reason", line);
  return s;
}

}  // namespace qsweep
