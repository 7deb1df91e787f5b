// Batched greedy generation with the real Llama-3 tokenizer on a made tiny model.
#include "qsweep/model/generate.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/tokenizer/tokenizer.h"
#include "test_helpers.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace qsweep;

namespace {

const std::string kTokenizer = QSWEEP_SOURCE_DIR "/.cache/tokenizers/llama3/tokenizer.json";

struct Fixture {
  Tokenizer tok = Tokenizer::from_files(kTokenizer);
  Model model;
  Fixture() {
    ModelConfig c = model_preset("tiny", static_cast<int>(tok.vocab_size()));
    c.bos_token_id = 128000;
    c.eos_token_ids = {128001};
    const std::string dir = make_temp_dir("generate-model");
    write_random_model(c, RandomInit{5, 0.2, at::kFloat}, dir);
    model = load_model(dir, {});
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

std::vector<std::vector<int32_t>> prompts() {
  std::vector<std::vector<int32_t>> out;
  for (const char* text : {"Once upon a time", "Q: What color was Cotton?\n\nA:", "1, 2, 3,",
                           "The quick brown fox jumps over the lazy dog near the river bank",
                           "Hi", "CoQA is a dataset for conversational question answering."})
    out.push_back(fixture().tok.encode(text, true));
  return out;
}

}  // namespace

TEST(Generate, GreedyTokensDoNotDependOnBatchSizeOrPadding) {
  GenerateOptions options;
  options.max_new_tokens = 24;
  options.batch_size = 1;
  const auto alone = generate(fixture().model, fixture().tok, prompts(), options);
  for (int batch : {2, 3, 6}) {
    options.batch_size = batch;
    const auto batched = generate(fixture().model, fixture().tok, prompts(), options);
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_EQ(batched[i].tokens, alone[i].tokens) << "prompt " << i << ", batch " << batch;
      EXPECT_EQ(batched[i].text, alone[i].text);
    }
  }
}

TEST(Generate, StopStringCutsTextAndEndsTheRow) {
  GenerateOptions options;
  options.max_new_tokens = 24;
  const auto free_run = generate(fixture().model, fixture().tok, prompts(), options);
  // Stop at a piece of the text row 0 produces anyway: that row must end there, cut before it.
  const std::string& text = free_run[0].text;
  ASSERT_GT(text.size(), 6u);
  options.stop = {text.substr(3, 3)};
  const auto stopped = generate(fixture().model, fixture().tok, prompts(), options);
  EXPECT_EQ(stopped[0].stop_reason, StopReason::stop_string);
  EXPECT_EQ(stopped[0].text, text.substr(0, text.find(options.stop[0])));
  EXPECT_LT(stopped[0].tokens.size(), free_run[0].tokens.size());
}

TEST(Generate, LengthLimitIsReported) {
  GenerateOptions options;
  options.max_new_tokens = 5;
  for (const Generation& g : generate(fixture().model, fixture().tok, prompts(), options)) {
    EXPECT_EQ(g.tokens.size(), 5u);
    EXPECT_EQ(g.stop_reason, StopReason::length);
  }
}

TEST(Generate, EosEndsTheRowAndIsNotPartOfTheOutput) {
  GenerateOptions options;
  options.max_new_tokens = 12;
  const auto free_run = generate(fixture().model, fixture().tok, prompts(), options);
  // Declare the third token row 0 produces anyway an EOS id of the model: row 0 must end there.
  const int32_t forced = free_run[0].tokens.at(2);
  Model with_eos = fixture().model;
  with_eos.config.eos_token_ids = {forced};
  const auto stopped = generate(with_eos, fixture().tok, prompts(), options);
  const auto first = std::find(free_run[0].tokens.begin(), free_run[0].tokens.end(), forced);
  EXPECT_EQ(stopped[0].stop_reason, StopReason::eos);
  EXPECT_EQ(stopped[0].tokens, std::vector<int32_t>(free_run[0].tokens.begin(), first));
  for (size_t i = 1; i < stopped.size(); ++i) {
    const auto& free_tokens = free_run[i].tokens;
    const bool hits = std::find(free_tokens.begin(), free_tokens.end(), forced) != free_tokens.end();
    EXPECT_EQ(stopped[i].stop_reason, hits ? StopReason::eos : StopReason::length) << "row " << i;
  }
}

TEST(Generate, RowsEndingEarlyHandTheirSlotToWaitingPromptsWithoutChangingAnyResult) {
  // EOS ids taken from the free runs end rows at different steps, so with 2 rows for 6 prompts
  // finished rows take waiting prompts mid-batch (continuous batching); every prompt must still
  // get exactly what it gets alone.
  GenerateOptions options;
  options.max_new_tokens = 16;
  const auto free_run = generate(fixture().model, fixture().tok, prompts(), options);
  Model with_eos = fixture().model;
  with_eos.config.eos_token_ids = {free_run[1].tokens.at(1), free_run[3].tokens.at(6)};
  options.batch_size = 1;
  const auto alone = generate(with_eos, fixture().tok, prompts(), options);
  size_t early = 0;
  for (const Generation& g : alone) early += g.stop_reason == StopReason::eos;
  ASSERT_GE(early, 2u) << "the test needs rows that end before the others";
  for (int batch : {2, 4}) {
    options.batch_size = batch;
    const auto batched = generate(with_eos, fixture().tok, prompts(), options);
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_EQ(batched[i].tokens, alone[i].tokens) << "prompt " << i << ", batch " << batch;
      EXPECT_EQ(batched[i].stop_reason, alone[i].stop_reason) << "prompt " << i;
    }
  }
}
