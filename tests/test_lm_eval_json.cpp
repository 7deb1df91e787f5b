#include "qsweep/util/error.h"
#include "qsweep/util/text.h"
#include "qsweep/eval/lm_eval_json.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace qsweep;
using nlohmann::ordered_json;

namespace {

// One story in the official dev file's layout, keys in the file's order (not the dataset's).
constexpr const char* kStoryFile = R"({"version": "1.0", "data": [{
  "source": "mctest", "id": "s1", "filename": "mc160.test.41", "story": "Café \"x\"\nline\ttab",
  "questions": [{"input_text": "Q1?", "turn_id": 1}, {"input_text": "Q2?", "turn_id": 2}],
  "answers": [
    {"span_start": 0, "span_end": 4, "span_text": "Café", "input_text": "café", "turn_id": 1},
    {"span_start": 5, "span_end": 9, "span_text": "x", "input_text": "x", "turn_id": 2}],
  "additional_answers": {"0": [
    {"span_start": 0, "span_end": 4, "span_text": "Café", "input_text": "Cafe", "turn_id": 1},
    {"span_start": -1, "span_end": -1, "span_text": "", "input_text": "X", "turn_id": 2}]},
  "name": "mc160.test.41"}]})";

ConfigMetrics metrics() {
  ConfigMetrics m;
  m.config = "nf4";
  m.em = {500, 0.61, 0.02, {0.57, 0.65}, {0.57, 0.65}};
  m.f1 = {500, 0.75, 0.015, {0.72, 0.78}, {0.72, 0.78}};
  m.f1_vs_baseline = PairedComparison{"bf16", 500, -0.01, {-0.02, 0.0}, 0.04};
  return m;
}

LmEvalRun run(CoqaMode mode = CoqaMode::lm_eval) {
  LmEvalRun r;
  r.model_name = "/scratch/models/Llama-3.2-1B";
  r.model_args = "pretrained=/scratch/models/Llama-3.2-1B,method=bnb_nf4,dtype=bf16";
  r.mode = mode;
  r.coqa_file = "coqa-dev-v1.0.json";
  r.batch_size = 8;
  r.device = "cpu";
  r.bootstrap = {10000, 1234};
  r.start_time = 1000;
  r.end_time = 1012.5;
  r.counts = {500, 500};
  return r;
}

SampleRecord record(const CoqaSample& s, std::string prediction) {
  SampleRecord r;
  r.id = s.id;
  r.turn = s.turn;
  r.source = s.source;
  r.prompt_sha256 = sha256_hex(s.prompt);
  r.prediction = std::move(prediction);
  r.golds = s.golds;
  r.em = 1;
  r.f1 = 1;
  return r;
}

}  // namespace

TEST(LmEvalJson, ResultsHaveEveryTopLevelKeyLmEvalWrites) {
  const ordered_json j = lm_eval_results_json(metrics(), run(), {});
  for (const char* key : {"results", "group_subtasks", "configs", "versions", "n-shot",
                          "higher_is_better", "n-samples", "config", "git_hash", "date",
                          "task_hashes", "model_name", "model_name_sanitized", "start_time",
                          "end_time", "total_evaluation_time_seconds"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["results"]["coqa"]["em,none"], 0.61);
  EXPECT_EQ(j["results"]["coqa"]["f1_stderr,none"], 0.015);
  EXPECT_EQ(j["versions"]["coqa"], 3.0);
  EXPECT_EQ(j["configs"]["coqa"]["metadata"]["version"], 3.0);
  EXPECT_EQ(j["configs"]["coqa"]["output_type"], "generate_until");
  EXPECT_EQ(j["config"]["model_args"], run().model_args);
  EXPECT_EQ(j["config"]["bootstrap_iters"], 10000);
  EXPECT_TRUE(j["config"]["gen_kwargs"].is_null());  // lm-eval's default max_gen_toks
  EXPECT_EQ(j["model_name_sanitized"], "__scratch__models__Llama-3.2-1B");
  EXPECT_EQ(j["total_evaluation_time_seconds"], "12.5");
  EXPECT_EQ(j["qsweep"]["f1_vs_baseline"]["p_value"], 0.04);
  EXPECT_FALSE(j["qsweep"].contains("em_vs_baseline"));
  EXPECT_FALSE(j["results"]["coqa"].contains("t95"));
}

TEST(LmEvalJson, ChangedGenerationLengthIsAGenKwarg) {
  LmEvalRun r = run();
  r.max_gen_toks = 16;
  const ordered_json j = lm_eval_results_json(metrics(), r, {});
  EXPECT_EQ(j["config"]["gen_kwargs"]["max_gen_toks"], 16);
  EXPECT_EQ(j["configs"]["coqa"]["generation_kwargs"]["max_gen_toks"], 16);
}

TEST(LmEvalJson, OfficialModeIsItsOwnTaskCountedInTurns) {
  LmEvalRun r = run(CoqaMode::official);
  r.counts = {7983, 150};
  const ordered_json j = lm_eval_results_json(metrics(), r, {});
  EXPECT_FALSE(j["results"].contains("coqa"));
  const std::string task = lm_eval_task_name(CoqaMode::official);
  EXPECT_NE(task, "coqa");
  EXPECT_NE(j["versions"][task], 3.0);
  EXPECT_EQ(j["n-samples"][task]["original"], 7983);
  EXPECT_EQ(j["n-samples"][task]["effective"], 150);
}

TEST(LmEvalJson, SingleSampleStderrIsNotAvailable) {
  ConfigMetrics m;
  m.em = summarize_mean({1.0}, {10000, 1});
  m.f1 = summarize_mean({1.0}, {10000, 1});
  const ordered_json j = lm_eval_results_json(m, run(), {});
  EXPECT_EQ(j["results"]["coqa"]["em_stderr,none"], "N/A");
  EXPECT_TRUE(j["qsweep"]["em"]["t95"][0].is_null());
}

TEST(LmEvalJson, ModelNamesSanitizedAsLmEval) {
  // Expected values from lm-eval's regex in Python: re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name).
  EXPECT_EQ(lm_eval_sanitize_model_name("meta-llama/Llama-3.2-1B"), "meta-llama__Llama-3.2-1B");
  EXPECT_EQ(lm_eval_sanitize_model_name("/scratch/m:x//Llama-3.2-1B[q]"),
            "__scratch__m__x__Llama-3.2-1B__q__");
}

TEST(LmEvalJson, TargetsWrittenAsPythonStrOfTheList) {
  // Python: str(["it's", 'a"b\'c', 'new\nline', 'nb\xa0sp', 'back\\slash', 'ü']).
  EXPECT_EQ(python_repr({"it's", "a\"b'c", "new\nline", "nb\u00a0sp", "back\\slash", "ü"}),
            R"(["it's", 'a"b\'c', 'new\nline', 'nb\xa0sp', 'back\\slash', 'ü'])");
}

TEST(LmEvalJson, DocsInTheDatasetsLayoutHashAsLmEval) {
  const std::vector<ordered_json> docs = lm_eval_coqa_docs(kStoryFile, "story.json");
  ASSERT_EQ(docs.size(), 1u);
  std::vector<std::string> keys;
  for (const auto& [key, value] : docs[0].items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"id", "source", "story", "questions", "answers",
                                            "additional_answers"}));
  EXPECT_EQ(docs[0]["answers"]["span_start"], ordered_json::array({0, 5}));
  const auto samples = build_samples(parse_coqa(kStoryFile, "story.json"), CoqaMode::lm_eval);
  const ordered_json line = lm_eval_sample_json(docs[0], 0, samples[0], record(samples[0], "x"), run());
  // sha256(json.dumps(doc, indent=2, ensure_ascii=False)) of this story, computed in Python.
  EXPECT_EQ(line["doc_hash"], "ef0203e4a503515d363afb1929e1121192eb6731ae710893b2d84babbbca3189");
  EXPECT_EQ(line["prompt_hash"], sha256_hex(samples[0].prompt));
  EXPECT_EQ(line["arguments"]["gen_args_0"]["arg_0"], samples[0].prompt);
  EXPECT_EQ(line["target"], "['x']");
  EXPECT_EQ(line["target_hash"], sha256_hex("['x']"));
  EXPECT_EQ(line["resps"], ordered_json::array({ordered_json::array({"x"})}));
  EXPECT_EQ(line["filter"], "none");
  EXPECT_EQ(line["em"], 1.0);
}

TEST(LmEvalJson, RespsAreTheGenerationAndTheScoredAnswerIsKeptBeside) {
  const std::vector<ordered_json> docs = lm_eval_coqa_docs(kStoryFile, "story.json");
  const auto samples = build_samples(parse_coqa(kStoryFile, "story.json"), CoqaMode::lm_eval);
  SampleRecord r = record(samples[0], "X");
  r.generation = " X\nA: more";
  const ordered_json line = lm_eval_sample_json(docs[0], 0, samples[0], r, run());
  EXPECT_EQ(line["resps"], ordered_json::array({ordered_json::array({" X\nA: more"})}));
  // lm-eval's "none" filter is take_first: the response itself, not the stripped answer.
  EXPECT_EQ(line["filtered_resps"], ordered_json::array({" X\nA: more"}));
  EXPECT_EQ(line["qsweep"]["answer"], "X");
  EXPECT_EQ(line["qsweep"]["resps_from"], "generation");
  const ordered_json j = lm_eval_results_json(metrics(), run(), {line});
  EXPECT_EQ(j["qsweep"]["resps"].get<std::string>().find("scored answer"), std::string::npos);
}

TEST(LmEvalJson, WithoutTheGenerationRespsFallBackToTheAnswerAndSaySo) {
  const std::vector<ordered_json> docs = lm_eval_coqa_docs(kStoryFile, "story.json");
  const auto samples = build_samples(parse_coqa(kStoryFile, "story.json"), CoqaMode::lm_eval);
  SampleRecord kept = record(samples[0], "X");
  kept.generation = " X";
  const ordered_json with = lm_eval_sample_json(docs[0], 0, samples[0], kept, run());
  const ordered_json without =
      lm_eval_sample_json(docs[0], 0, samples[0], record(samples[0], "X"), run());
  EXPECT_EQ(without["resps"], ordered_json::array({ordered_json::array({"X"})}));
  EXPECT_EQ(without["filtered_resps"], ordered_json::array({"X"}));
  EXPECT_EQ(without["qsweep"]["resps_from"], "answer");
  const ordered_json j = lm_eval_results_json(metrics(), run(), {with, without});
  EXPECT_NE(j["qsweep"]["resps"].get<std::string>().find("scored answer (stripped, first line) "
                                                         "for 1 of 2 samples"),
            std::string::npos)
      << j["qsweep"]["resps"];
}

class LmEvalOutput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("qsweep-lm-eval-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
};

TEST_F(LmEvalOutput, WritesResultsAndSamplesUnderTheSanitizedModelName) {
  const auto samples = build_samples(parse_coqa(kStoryFile, "story.json"), CoqaMode::lm_eval);
  // A prediction cut inside a character by the token limit is written, not fatal.
  const std::string results = write_lm_eval_output(
      dir.string(), run(), metrics(), lm_eval_coqa_docs(kStoryFile, "story.json"), samples,
      {record(samples[0], "caf\xC3")});
  const auto model_dir = dir / "__scratch__models__Llama-3.2-1B";
  EXPECT_EQ(std::filesystem::path(results).parent_path(), model_dir);
  EXPECT_EQ(std::filesystem::path(results).filename(), "results_1970-01-01T00-16-52.500000.json");
  const std::string line = read_file((model_dir / "samples_coqa_1970-01-01T00-16-52.500000.jsonl").string());
  const ordered_json sample = ordered_json::parse(line);
  EXPECT_EQ(sample["filtered_resps"][0], "caf\xEF\xBF\xBD");
  const ordered_json j = ordered_json::parse(read_file(results));
  EXPECT_EQ(j["task_hashes"]["coqa"], sha256_hex(sample["doc_hash"].get<std::string>() +
                                                 sample["prompt_hash"].get<std::string>() +
                                                 sample["target_hash"].get<std::string>()));
}

TEST_F(LmEvalOutput, ARecordWhosePromptChangedIsRefused) {
  const auto samples = build_samples(parse_coqa(kStoryFile, "story.json"), CoqaMode::lm_eval);
  SampleRecord r = record(samples[0], "x");
  r.prompt_sha256 = sha256_hex("another prompt");
  try {
    write_lm_eval_output(dir.string(), run(), metrics(), lm_eval_coqa_docs(kStoryFile, "story.json"),
                         samples, {r});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CoQA file changed"), std::string::npos) << e.what();
  }
}

TEST_F(LmEvalOutput, WithoutLogSamplesOnlyTheResultsAreWritten) {
  const auto samples = build_samples(parse_coqa(kStoryFile, "story.json"), CoqaMode::lm_eval);
  LmEvalRun r = run();
  r.log_samples = false;
  const std::string results = write_lm_eval_output(
      dir.string(), r, metrics(), lm_eval_coqa_docs(kStoryFile, "story.json"), samples,
      {record(samples[0], "x")});
  size_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(std::filesystem::path(results).parent_path()))
    files += f.is_regular_file();
  EXPECT_EQ(files, 1u);
  EXPECT_TRUE(ordered_json::parse(read_file(results))["task_hashes"].empty());
}
