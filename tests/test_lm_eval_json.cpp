#include "qsweep/util/error.h"
#include "qsweep/eval/lm_eval_json.h"

#include <gtest/gtest.h>

using namespace qsweep;
using nlohmann::json;

namespace {
SampleRecord sample() {
  SampleRecord s;
  s.id = "3dr23u6we5exclen4th8uq9rb42tel";
  s.turn = 12;
  s.source = "mctest";
  s.prompt_sha256 = "26a5cc599a6e411e4afdc8154523f32282582a052eb64ebdab7559c91c73d53c";
  s.prediction = "No, they did not — café";
  s.golds = {"no"};
  s.em = 0;
  s.f1 = 0.4;
  s.prompt_tokens = 512;
  s.generated_tokens = 7;
  s.stop_reason = "stop_string";
  return s;
}
}  // namespace

TEST(LmEvalJson, ResultsHaveLmEvalKeysAndExtrasApart) {
  ConfigMetrics m;
  m.config = "nf4";
  m.em = {500, 0.61, 0.02, {0.57, 0.65}, {0.57, 0.65}};
  m.f1 = {500, 0.75, 0.015, {0.72, 0.78}, {0.72, 0.78}};
  m.f1_vs_baseline = PairedComparison{"bf16", 500, -0.01, {-0.02, 0.0}, 0.04};
  const json config = {{"model", "meta-llama/Llama-3.2-1B"}, {"quant", "nf4"}};
  const json j = lm_eval_results_json(m, {500, 500}, config, {10000, 1234});
  EXPECT_EQ(j["results"]["coqa"]["em,none"], 0.61);
  EXPECT_EQ(j["results"]["coqa"]["em_stderr,none"], 0.02);
  EXPECT_EQ(j["results"]["coqa"]["f1_stderr,none"], 0.015);
  EXPECT_EQ(j["results"]["coqa"]["alias"], "coqa");
  EXPECT_EQ(j["config"], config);
  EXPECT_EQ(j["n-samples"]["coqa"]["original"], 500);
  EXPECT_EQ(j["n-samples"]["coqa"]["effective"], 500);
  EXPECT_EQ(j["qsweep"]["f1"]["bca95"], json::array({0.72, 0.78}));
  EXPECT_EQ(j["qsweep"]["f1_vs_baseline"]["p_value"], 0.04);
  EXPECT_FALSE(j["qsweep"].contains("em_vs_baseline"));
  EXPECT_FALSE(j["results"]["coqa"].contains("t95"));
}

TEST(LmEvalJson, SingleSampleStderrIsNotAvailable) {
  ConfigMetrics m;
  m.em = summarize_mean({1.0}, {10000, 1});
  m.f1 = summarize_mean({1.0}, {10000, 1});
  const json j = lm_eval_results_json(m, {500, 1}, json::object(), {10000, 1});
  EXPECT_EQ(j["results"]["coqa"]["em_stderr,none"], "N/A");
  EXPECT_TRUE(j["qsweep"]["em"]["t95"][0].is_null());
}

TEST(SampleLine, RoundTripsOnOneLine) {
  const std::string line = sample_json_line(sample());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const SampleRecord back = sample_from_json_line(line);
  EXPECT_EQ(back.id, sample().id);
  EXPECT_EQ(back.turn, 12);
  EXPECT_EQ(back.prediction, sample().prediction);
  EXPECT_EQ(back.golds, sample().golds);
  EXPECT_EQ(back.f1, 0.4);
  EXPECT_EQ(back.stop_reason, "stop_string");
  EXPECT_EQ(json::parse(line)["prompt_sha256"], sample().prompt_sha256);
}

TEST(SampleLine, InvalidUtf8PredictionIsReplacedNotFatal) {
  SampleRecord s = sample();
  s.prediction = "caf\xC3";  // a character cut by the token limit
  EXPECT_EQ(sample_from_json_line(sample_json_line(s)).prediction, "caf\xEF\xBF\xBD");
}

TEST(SampleLine, MissingFieldIsNamed) {
  json j = json::parse(sample_json_line(sample()));
  j.erase("golds");
  try {
    sample_from_json_line(j.dump());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'golds'"), std::string::npos) << e.what();
  }
}
