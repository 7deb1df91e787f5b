#include "qsweep/eval/coqa.h"
#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

using namespace qsweep;
using nlohmann::json;

namespace {

const std::string kDevSample = QSWEEP_SOURCE_DIR "/data/coqa/coqa_dev_format_sample_10stories.json";
const std::string kTrainSample =
    QSWEEP_SOURCE_DIR "/data/coqa/coqa_train_format_sample_5stories.json";

std::string temp_dir() {
  const auto dir = std::filesystem::path(QSWEEP_BINARY_DIR) / "test_coqa_files" /
                   ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

json dev_sample() { return json::parse(read_file(kDevSample)); }

// The error message load_coqa gives for a file, or "" when it loads.
std::string load_error(const std::string& path) {
  try {
    load_coqa(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(CoqaLoad, ReadsDevFormatWithAdditionalAnswers) {
  const CoqaData data = load_coqa(kDevSample);
  ASSERT_EQ(data.stories.size(), 10u);
  EXPECT_EQ(data.info.sha256, "a8f956e7de7b8f2aed9902b6fe2294bc5ad0ed07ef38aa89ac13fcf51af38040");
  EXPECT_EQ(data.info.bytes, 98324);
  EXPECT_FALSE(data.info.is_official_dev);
  EXPECT_FALSE(data.info.dev_name_mismatch);
  const CoqaStory& first = data.stories[0];
  EXPECT_EQ(first.id, "3dr23u6we5exclen4th8uq9rb42tel");
  EXPECT_EQ(first.source, "mctest");
  ASSERT_EQ(first.turns.size(), 12u);
  EXPECT_EQ(first.turns[0].question, "What color was Cotton?");
  EXPECT_EQ(first.turns[0].answer, "white");
  EXPECT_EQ(first.turns[0].additional_answers.size(), 3u);
}

TEST(CoqaLoad, ReadsTrainFormatPlainListWithoutAdditionalAnswers) {
  const CoqaData data = load_coqa(kTrainSample);
  ASSERT_EQ(data.stories.size(), 5u);
  size_t turns = 0;
  for (const auto& s : data.stories) turns += s.turns.size();
  EXPECT_EQ(turns, 75u);
  EXPECT_EQ(data.stories[0].id, "3zotghdk5ibi9cex97fepx7jetpso7");
  EXPECT_TRUE(data.stories[0].turns.back().additional_answers.empty());
  EXPECT_EQ(lm_eval_golds(data.stories[0], 20), std::vector<std::string>{"them to be viewed online."});
}

TEST(CoqaPrompt, FirstDevStoryMatchesLmEvalDocToTextBytes) {
  const CoqaData data = load_coqa(kDevSample);
  const CoqaStory& story = data.stories[0];
  const auto samples = build_samples(data.stories, CoqaMode::lm_eval);
  ASSERT_EQ(samples.size(), 10u);
  const std::string& prompt = samples[0].prompt;
  EXPECT_EQ(samples[0].turn, 12);
  EXPECT_EQ(prompt.rfind(story.story + "\n\nQ: What color was Cotton?\n\nA: white\n\nQ: ", 0), 0u);
  const std::string tail = "\n\nA: licked her face\n\n"
                           "Q: Did they want Cotton to change the color of her fur?\n\nA:";
  ASSERT_GE(prompt.size(), tail.size());
  EXPECT_EQ(prompt.substr(prompt.size() - tail.size()), tail);
  EXPECT_EQ(count(prompt, "\n\nQ: "), 12u);
  EXPECT_EQ(count(prompt, "\n\nA: "), 11u);
  // /usr/bin/python3, following lm_eval/tasks/coqa/utils.py doc_to_text on the HF doc shape:
  //   doc = json.load(open(SAMPLE))["data"][0]; qs = [q["input_text"] for q in doc["questions"]]
  //   ans = [a["input_text"] for a in doc["answers"]]; text = doc["story"] + "\n\n"
  //   for q, a in itertools.zip_longest(qs, ans[:-1]):
  //       text += f"Q: {q}\n\n" + (f"A: {a}\n\n" if a is not None else "A:")
  //   len(text.encode()), hashlib.sha256(text.encode()).hexdigest()
  EXPECT_EQ(prompt.size(), 2200u);
  EXPECT_EQ(sha256_hex(prompt), "26a5cc599a6e411e4afdc8154523f32282582a052eb64ebdab7559c91c73d53c");
  // Same recipe for the second story (oaievals-coqa-01).
  EXPECT_EQ(sha256_hex(samples[1].prompt),
            "03e6c16f470816e8f4b836e222589d338d288549e7522526452ae3ae4298f08a");
}

TEST(CoqaPrompt, OfficialModeHasOnePromptPerTurnEndingAtThatTurn) {
  const CoqaData data = load_coqa(kDevSample);
  const auto samples = build_samples(data.stories, CoqaMode::official);
  EXPECT_EQ(samples.size(), 88u);  // 12+7+9+5+10+8+7+17+2+11 turns
  EXPECT_EQ(samples[0].turn, 1);
  EXPECT_EQ(samples[0].prompt, data.stories[0].story + "\n\nQ: What color was Cotton?\n\nA:");
  EXPECT_EQ(samples[1].prompt, data.stories[0].story +
                                   "\n\nQ: What color was Cotton?\n\nA: white\n\n"
                                   "Q: Where did she live?\n\nA:");
  // The last turn's prompt is the lm_eval prompt; golds keep all four answers.
  EXPECT_EQ(samples[11].prompt, build_samples(data.stories, CoqaMode::lm_eval)[0].prompt);
  EXPECT_EQ(samples[11].golds, (std::vector<std::string>{"no", "no", "No", "no"}));
  EXPECT_EQ(samples[12].id, "oaievals-coqa-01");
  EXPECT_EQ(samples[12].story_index, 1u);
}

TEST(CoqaGolds, LmEvalDropsAdditionalAnswersEqualIgnoringCase) {
  const CoqaData data = load_coqa(kDevSample);
  // Python: doc_to_target on each story (values above computed with /usr/bin/python3).
  EXPECT_EQ(lm_eval_golds(data.stories[0], 12), std::vector<std::string>{"no"});
  EXPECT_EQ(lm_eval_golds(data.stories[9], 11),
            (std::vector<std::string>{"Almost.", "almost", "no"}));
  EXPECT_EQ(lm_eval_golds(data.stories[6], 7), (std::vector<std::string>{"Lois", "Lois'"}));
  EXPECT_EQ(lm_eval_golds(data.stories[1], 7),
            (std::vector<std::string>{"His hands behind his back.", "Strolling",
                                      "his hands behind his back",
                                      "with his hands behind his back"}));
  EXPECT_EQ(official_golds(data.stories[9], 11),
            (std::vector<std::string>{"Almost.", "almost", "no", "almost"}));
}

TEST(CoqaGolds, DedupUsesUnicodeLowerCase) {
  CoqaStory story{"s", "wikipedia", "text", {{"q", "ÉCOLE", {"école", "Ecole", "ÉCOLE"}}}};
  EXPECT_EQ(lm_eval_golds(story, 1), (std::vector<std::string>{"ÉCOLE", "Ecole"}));
}

TEST(CoqaShards, StoryShardsAreContiguousAndCoverTheLimit) {
  const auto shards = shard_stories(7, 3);
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0].begin, 0u);
  EXPECT_EQ(shards[0].end, 3u);
  EXPECT_EQ(shards[2].begin, 6u);
  EXPECT_EQ(shards[2].end, 7u);
  EXPECT_EQ(shard_stories(10, 100).size(), 1u);
  EXPECT_TRUE(shard_stories(0, 4).empty());
  EXPECT_THROW(shard_stories(10, 0), Error);
}

TEST(CoqaShards, SamplesOfStoriesKeepsEveryTurnOfThoseStoriesInOrder) {
  const CoqaData data = load_coqa(kDevSample);
  const auto last_turns = build_samples(data.stories, CoqaMode::lm_eval);
  EXPECT_EQ(samples_of_stories(last_turns, {6, 9}).size(), 3u);
  EXPECT_EQ(samples_of_stories(last_turns, {0, 100}).size(), 10u);
  const auto all_turns = build_samples(data.stories, CoqaMode::official);
  const auto two = samples_of_stories(all_turns, {0, 2});  // stories of 12 and 7 turns
  ASSERT_EQ(two.size(), 19u);
  EXPECT_EQ(two.front().turn, 1);
  EXPECT_EQ(two.back().story_index, 1u);
  EXPECT_EQ(two.back().turn, 7);
}

TEST(CoqaMode, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_coqa_mode("lm_eval"), CoqaMode::lm_eval);
  EXPECT_EQ(parse_coqa_mode("official"), CoqaMode::official);
  EXPECT_THROW(parse_coqa_mode("all_turns"), Error);
}

TEST(CoqaBadInput, MissingFileNamesThePath) {
  EXPECT_NE(load_error("/nonexistent/coqa-dev-v1.0.json").find("/nonexistent/coqa-dev-v1.0.json"),
            std::string::npos);
}

TEST(CoqaBadInput, NotJsonNamesTheFile) {
  const std::string path = write_temp("broken.json", "{\"version\": \"1.0\", \"data\": [");
  const std::string message = load_error(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

TEST(CoqaBadInput, StoryWithoutQuestionsNamesStoryAndField) {
  json j = dev_sample();
  j["data"][3].erase("questions");
  const std::string message = load_error(write_temp("no_questions.json", j.dump()));
  EXPECT_NE(message.find("oaievals-coqa-03"), std::string::npos) << message;
  EXPECT_NE(message.find("'questions'"), std::string::npos) << message;
}

TEST(CoqaBadInput, AnswerCountMismatchNamesStoryAndField) {
  json j = dev_sample();
  j["data"][2]["answers"].erase(j["data"][2]["answers"].size() - 1);
  const std::string message = load_error(write_temp("short_answers.json", j.dump()));
  EXPECT_NE(message.find("oaievals-coqa-02"), std::string::npos) << message;
  EXPECT_NE(message.find("'answers' has 8 entries but 'questions' has 9"), std::string::npos)
      << message;
}

TEST(CoqaBadInput, AdditionalAnswerWithoutTextNamesTheEntry) {
  json j = dev_sample();
  j["data"][0]["additional_answers"]["1"][4].erase("input_text");
  const std::string message = load_error(write_temp("no_text.json", j.dump()));
  EXPECT_NE(message.find("3dr23u6we5exclen4th8uq9rb42tel"), std::string::npos) << message;
  EXPECT_NE(message.find("additional_answers.1[4].input_text"), std::string::npos) << message;
}

TEST(CoqaBadInput, WrongTypeAndMissingIdAreNamed) {
  json j = dev_sample();
  j["data"][5]["story"] = 42;
  std::string message = load_error(write_temp("story_number.json", j.dump()));
  EXPECT_NE(message.find("oaievals-coqa-05"), std::string::npos) << message;
  EXPECT_NE(message.find("'story' is number"), std::string::npos) << message;

  j = dev_sample();
  j["data"][4].erase("id");
  message = load_error(write_temp("no_id.json", j.dump()));
  EXPECT_NE(message.find("story #4"), std::string::npos) << message;
  EXPECT_NE(message.find("'id'"), std::string::npos) << message;
}

TEST(CoqaBadInput, DuplicateStoryIdIsRejected) {
  json j = dev_sample();
  j["data"][7]["id"] = j["data"][1]["id"];
  const std::string message = load_error(write_temp("duplicate.json", j.dump()));
  EXPECT_NE(message.find("'oaievals-coqa-01' appears twice"), std::string::npos) << message;
}

TEST(CoqaChecksum, DevFileNameWithOtherBytesIsFlagged) {
  const std::string path = write_temp("coqa-dev-v1.0.json", read_file(kDevSample));
  const CoqaData data = load_coqa(path);
  EXPECT_FALSE(data.info.is_official_dev);
  EXPECT_TRUE(data.info.dev_name_mismatch);
  EXPECT_EQ(data.stories.size(), 10u);
}
