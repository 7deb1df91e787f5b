#include "qsweep/eval/lm_eval_json.h"

#include "python_str.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/util/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <regex>

namespace qsweep {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

ordered_json number_or_null(double v) { return std::isnan(v) ? ordered_json(nullptr) : ordered_json(v); }

ordered_json interval_json(const Interval& i) {
  return ordered_json::array({number_or_null(i.lo), number_or_null(i.hi)});
}

ordered_json summary_json(const MeanSummary& s) {
  return {{"n", s.n},
          {"mean", s.mean},
          {"stderr", number_or_null(s.stderr_)},
          {"t95", interval_json(s.t95)},
          {"bca95", interval_json(s.bca95)}};
}

ordered_json comparison_json(const PairedComparison& c) {
  return {{"baseline", c.baseline},
          {"n", c.n},
          {"mean_delta", c.mean_delta},
          {"bca95", interval_json(c.bca95)},
          {"p_value", c.p_value}};
}

ordered_json stderr_json(double v) { return std::isnan(v) ? ordered_json("N/A") : ordered_json(v); }

// json.dumps(..., indent=2, ensure_ascii=False), which lm-eval hashes a doc with: nlohmann's
// indented form has Python's separators and escapes; invalid UTF-8 (a prediction cut inside a
// character) becomes U+FFFD instead of failing the export.
std::string python_dumps_indent2(const ordered_json& j) {
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

// The generation arguments lm-eval passes with each request: the task's generation_kwargs, with
// max_gen_toks only when the run changed lm-eval's default (as `--gen_kwargs` would add it).
ordered_json generation_kwargs(const LmEvalRun& run) {
  ordered_json kwargs = {{"until", run.until}};
  if (run.max_gen_toks != kCoqaMaxGenTokens) kwargs["max_gen_toks"] = run.max_gen_toks;
  return kwargs;
}

// A per-turn list field of the dataset: `key` of every entry of `list`.
ordered_json column(const ordered_json& list, const char* key) {
  ordered_json values = ordered_json::array();
  for (const ordered_json& entry : list)
    values.push_back(entry.contains(key) ? entry[key] : ordered_json());
  return values;
}

ordered_json answer_columns(const ordered_json& list) {
  return {{"span_start", column(list, "span_start")}, {"span_end", column(list, "span_end")},
          {"span_text", column(list, "span_text")},   {"input_text", column(list, "input_text")},
          {"turn_id", column(list, "turn_id")}};
}

// The dataset fills the train split's missing additional answers with one empty answer per set.
ordered_json empty_additional_answers() {
  const ordered_json empty = ordered_json::array({{{"span_start", -1}, {"span_end", -1}, {"span_text", ""},
                                   {"input_text", ""}, {"turn_id", -1}}});
  return {{"0", answer_columns(empty)}, {"1", answer_columns(empty)}, {"2", answer_columns(empty)}};
}

ordered_json task_config(const LmEvalRun& run) {
  const std::string task = lm_eval_task_name(run.mode);
  ordered_json metrics = ordered_json::array();
  for (const char* m : {"em", "f1"})
    metrics.push_back({{"metric", m}, {"aggregation", "mean"}, {"higher_is_better", true}});
  return {{"task", task},
          {"dataset_path", "EleutherAI/coqa"},
          {"qsweep_data_file", run.coqa_file},
          {"output_type", "generate_until"},
          {"training_split", "train"},
          {"validation_split", "validation"},
          {"doc_to_text", "utils.doc_to_text"},
          {"doc_to_target", run.mode == CoqaMode::lm_eval ? "utils.doc_to_target"
                                                          : "every answer of the turn (official)"},
          {"process_results", "utils.process_results"},
          {"description", run.mode == CoqaMode::lm_eval
                              ? "the last turn of each story, as lm-eval's coqa"
                              : "every turn of every story, as CoQA's evaluate-v1.0.py"},
          {"target_delimiter", " "},
          {"fewshot_delimiter", "\n\n"},
          {"num_fewshot", 0},
          {"metric_list", metrics},
          {"generation_kwargs", generation_kwargs(run)},
          {"repeats", 1},
          {"should_decontaminate", true},
          {"doc_to_decontamination_query", "{{story}} {{question.input_text|join('\\n')}}"},
          {"metadata", {{"version", lm_eval_task_version(run.mode)}}}};
}

// lm-eval's date_id: datetime.isoformat() with ':' replaced, here in UTC.
std::string file_date(double unix_seconds) {
  const auto whole = static_cast<std::time_t>(unix_seconds);
  const auto micros = static_cast<long>(std::llround((unix_seconds - whole) * 1e6)) % 1000000;
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H-%M-%S", &tm);
  return fmt::format("{}.{:06d}", text, micros);
}

std::string escape_char(char32_t c) {
  if (c == '\n') return "\\n";
  if (c == '\r') return "\\r";
  if (c == '\t') return "\\t";
  if (c < 0x100) return fmt::format("\\x{:02x}", static_cast<unsigned>(c));
  if (c < 0x10000) return fmt::format("\\u{:04x}", static_cast<unsigned>(c));
  return fmt::format("\\U{:08x}", static_cast<unsigned>(c));
}

// str.isprintable() for what CoQA text holds: controls and every Unicode space but ' ' are not.
bool is_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return false;
  return c == ' ' || !py::is_space(c);
}

std::string repr_one(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : utf8_to_u32(s)) {
    if (c == '\\' || c == static_cast<char32_t>(quote))
      out += std::string{'\\', static_cast<char>(c)};
    else if (is_printable(c))
      out += u32_to_utf8(std::u32string(1, c));
    else
      out += escape_char(c);
  }
  return out + quote;
}

}  // namespace

const char* lm_eval_task_name(CoqaMode mode) {
  switch (mode) {
    case CoqaMode::lm_eval: return "coqa";
    case CoqaMode::official: return "coqa_official_turns";
  }
  return "coqa";
}

double lm_eval_task_version(CoqaMode mode) {
  switch (mode) {
    case CoqaMode::lm_eval: return 3.0;  // lm-eval's coqa/default.yaml metadata.version
    case CoqaMode::official: return 1.0;  // after evaluate-v1.0.py, whose scoring it follows
  }
  return 3.0;
}

std::string lm_eval_sanitize_model_name(std::string_view name) {
  static const std::regex reserved(R"(["<>:/|\\?*\[\]]+)");
  return std::regex_replace(std::string(name), reserved, "__");
}

std::string python_repr(const std::vector<std::string>& strings) {
  std::string out = "[";
  for (size_t i = 0; i < strings.size(); ++i) out += (i ? ", " : "") + repr_one(strings[i]);
  return out + "]";
}

std::vector<ordered_json> lm_eval_coqa_docs(std::string_view coqa_json_text, const std::string& path) {
  // The file passed load_coqa's validation before any run used it; only the layout is assumed.
  const ordered_json root = ordered_json::parse(coqa_json_text, nullptr, false);
  const ordered_json& stories = root.is_object() ? root.value("data", ordered_json()) : root;
  if (!stories.is_array()) fail("'{}' is not a CoQA file (no list of stories)", path);
  std::vector<ordered_json> docs;
  for (const ordered_json& s : stories) {
    ordered_json doc = {{"id", s.at("id")}, {"source", s.at("source")}, {"story", s.at("story")}};
    const ordered_json& questions = s.at("questions");
    doc["questions"] = {{"input_text", column(questions, "input_text")},
                        {"turn_id", column(questions, "turn_id")}};
    doc["answers"] = answer_columns(s.at("answers"));
    if (s.contains("additional_answers")) {
      ordered_json extra = ordered_json::object();
      for (const auto& [key, list] : s["additional_answers"].items()) extra[key] = answer_columns(list);
      doc["additional_answers"] = extra;
    } else {
      doc["additional_answers"] = empty_additional_answers();
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

ordered_json lm_eval_sample_json(const ordered_json& doc, size_t doc_id, const CoqaSample& sample,
                                 const SampleRecord& record, const LmEvalRun& run) {
  const std::string target = python_repr(sample.golds);
  ordered_json arguments = {{"gen_args_0", {{"arg_0", sample.prompt}, {"arg_1", generation_kwargs(run)}}}};
  // coqa has no filter_list, so lm-eval's "none" filter (take_first) makes filtered_resps the
  // response itself; the strip and first line happen inside process_results, unlogged.
  const std::string& response = record.generation ? *record.generation : record.prediction;
  return {{"doc_id", doc_id},
          {"doc", doc},
          {"target", target},
          {"arguments", arguments},
          {"resps", ordered_json::array({ordered_json::array({response})})},
          {"filtered_resps", ordered_json::array({response})},
          {"filter", "none"},
          {"metrics", {"em", "f1"}},
          {"doc_hash", sha256_hex(python_dumps_indent2(doc))},
          {"prompt_hash", sha256_hex(sample.prompt)},
          {"target_hash", sha256_hex(target)},
          {"em", record.em},
          {"f1", record.f1},
          {"qsweep",
           {{"answer", record.prediction},
            {"resps_from", record.generation ? "generation" : "answer"},
            {"generated_tokens", record.generated_tokens}}}};
}

namespace {

// What the samples' resps hold, in words, for the results file and the log.
std::string resps_note(const std::vector<ordered_json>& samples) {
  const auto answers = std::count_if(samples.begin(), samples.end(), [](const ordered_json& s) {
    return s["qsweep"]["resps_from"] == "answer";
  });
  if (answers == 0) return "the generation cut at the first of `until`, as lm-eval logs it";
  return fmt::format("the scored answer (stripped, first line) for {} of {} samples: their store "
                     "predates qsweep keeping the generation; the rest hold the generation",
                     answers, samples.size());
}

// lm-eval hashes a task's samples only when it logs them.
ordered_json task_hashes_json(const std::string& task, const LmEvalRun& run,
                              const std::vector<ordered_json>& samples) {
  std::string hashes;
  for (const ordered_json& s : samples)
    hashes += s["doc_hash"].get<std::string>() + s["prompt_hash"].get<std::string>() +
              s["target_hash"].get<std::string>();
  ordered_json task_hashes = ordered_json::object();
  if (run.log_samples) task_hashes[task] = sha256_hex(hashes);
  return task_hashes;
}

// What qsweep adds under "qsweep": intervals, the bootstrap, the comparisons with the baseline.
ordered_json qsweep_extras_json(const ConfigMetrics& metrics, const LmEvalRun& run,
                                const std::vector<ordered_json>& samples) {
  ordered_json extras = {
      {"config", metrics.config},
      {"em", summary_json(metrics.em)},
      {"f1", summary_json(metrics.f1)},
      {"bootstrap", {{"resamples", run.bootstrap.resamples}, {"seed", run.bootstrap.seed}}},
      {"resps", resps_note(samples)},
      {"methods",
       {{"stderr", "sample standard deviation (ddof=1) / sqrt(n), as lm-eval"},
        {"t95", "mean +- t(0.975, n-1) * stderr"},
        {"bca95", "BCa bootstrap of the mean, jackknife acceleration (scipy's definition)"},
        {"vs_baseline",
         "paired by (id, turn): BCa bootstrap of mean(config - baseline); two-sided p = "
         "(1 + #{|mean*_b - mean| >= |mean|}) / (B + 1), deltas centred under H0"}}}};
  if (metrics.em_vs_baseline) extras["em_vs_baseline"] = comparison_json(*metrics.em_vs_baseline);
  if (metrics.f1_vs_baseline) extras["f1_vs_baseline"] = comparison_json(*metrics.f1_vs_baseline);
  return extras;
}

// The file's "config": the run's settings under lm-eval's names.
ordered_json run_config_json(const LmEvalRun& run) {
  // Greedy decoding draws no random numbers: the one seed is the bootstrap's, reported for each
  // of lm-eval's seeds.
  const uint64_t seed = run.bootstrap.seed;
  return {{"model", "qsweep"},
          {"model_args", run.model_args},
          {"batch_size", run.batch_size},
          {"batch_sizes", ordered_json::array()},
          {"device", run.device},
          {"use_cache", nullptr},
          {"limit", run.limit ? ordered_json(*run.limit) : ordered_json(nullptr)},
          {"bootstrap_iters", run.bootstrap.resamples},
          {"gen_kwargs", run.max_gen_toks == kCoqaMaxGenTokens
                             ? ordered_json(nullptr)
                             : ordered_json({{"max_gen_toks", run.max_gen_toks}})},
          {"random_seed", seed},
          {"numpy_seed", seed},
          {"torch_seed", seed},
          {"fewshot_seed", seed}};
}

}  // namespace

ordered_json lm_eval_results_json(const ConfigMetrics& metrics, const LmEvalRun& run,
                                  const std::vector<ordered_json>& samples) {
  const std::string task = lm_eval_task_name(run.mode);
  return {{"results",
           {{task,
             {{"alias", task},
              // lm-eval 0.4 names a metric "<metric>,<filter>"; coqa uses the "none" filter.
              {"em,none", metrics.em.mean},
              {"em_stderr,none", stderr_json(metrics.em.stderr_)},
              {"f1,none", metrics.f1.mean},
              {"f1_stderr,none", stderr_json(metrics.f1.stderr_)}}}}},
          {"group_subtasks", {{task, ordered_json::array()}}},
          {"configs", {{task, task_config(run)}}},
          {"versions", {{task, lm_eval_task_version(run.mode)}}},
          {"n-shot", {{task, 0}}},
          {"higher_is_better", {{task, {{"em", true}, {"f1", true}}}}},
          {"n-samples",
           {{task, {{"original", run.counts.original}, {"effective", run.counts.effective}}}}},
          {"config", run_config_json(run)},
          {"git_hash", run.git_hash},
          {"date", run.end_time},
          {"task_hashes", task_hashes_json(task, run, samples)},
          {"model_source", "qsweep"},
          {"model_name", run.model_name},
          {"model_name_sanitized", lm_eval_sanitize_model_name(run.model_name)},
          {"start_time", run.start_time},
          {"end_time", run.end_time},
          {"total_evaluation_time_seconds", fmt::format("{}", run.end_time - run.start_time)},
          {"qsweep", qsweep_extras_json(metrics, run, samples)}};
}

std::string write_lm_eval_output(const std::string& output_path, const LmEvalRun& run,
                                 const ConfigMetrics& metrics, const std::vector<ordered_json>& docs,
                                 const std::vector<CoqaSample>& samples,
                                 const std::vector<SampleRecord>& records) {
  std::map<std::pair<std::string, int>, size_t> doc_ids;
  for (size_t i = 0; i < samples.size(); ++i) doc_ids[{samples[i].id, samples[i].turn}] = i;
  std::map<size_t, const SampleRecord*> by_doc;  // lm-eval writes samples in document order
  for (const SampleRecord& r : records) {
    const auto it = doc_ids.find({r.id, r.turn});
    if (it == doc_ids.end() || sha256_hex(samples[it->second].prompt) != r.prompt_sha256)
      fail("sample (story '{}', turn {}) has no matching prompt in {}: the CoQA file changed "
           "since the run; rerun with the file the results came from", r.id, r.turn, run.coqa_file);
    by_doc[it->second] = &r;
  }
  std::vector<ordered_json> lines;
  std::string jsonl;
  for (const auto& [doc_id, record] : by_doc) {
    const CoqaSample& s = samples[doc_id];
    lines.push_back(lm_eval_sample_json(docs.at(s.story_index), doc_id, s, *record, run));
    jsonl += lines.back().dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  if (std::any_of(records.begin(), records.end(), [](const SampleRecord& r) { return !r.generation; }))
    log_warning("{}: resps hold {}", output_path, resps_note(lines));
  const std::filesystem::path dir =
      std::filesystem::path(output_path) / lm_eval_sanitize_model_name(run.model_name);
  std::filesystem::create_directories(dir);
  const std::string date = file_date(run.end_time);
  const std::string results = (dir / ("results_" + date + ".json")).string();
  if (run.log_samples)
    write_file_atomic(
        (dir / fmt::format("samples_{}_{}.jsonl", lm_eval_task_name(run.mode), date)).string(), jsonl);
  write_file_atomic(results, python_dumps_indent2(lm_eval_results_json(metrics, run, lines)) + "\n");
  return results;
}

}  // namespace qsweep
