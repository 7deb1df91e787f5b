#include "qsweep/eval/coqa.h"

#include "python_str.h"
#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

namespace qsweep {
namespace {

using nlohmann::json;

// Where a field sits, for messages that let the user find it in a 9 MB file.
struct StoryContext {
  const std::string& path;
  size_t index;
  std::string id;  // "" until read
};

std::string describe(const StoryContext& at) {
  return at.id.empty() ? fmt::format("'{}': story #{}", at.path, at.index)
                       : fmt::format("'{}': story '{}' (#{})", at.path, at.id, at.index);
}

const json& require(const json& object, const char* key, json::value_t type,
                    const StoryContext& at, const std::string& field) {
  const auto it = object.find(key);
  if (it == object.end())
    fail("{}: missing field '{}'; a CoQA story needs id, source, story, questions[].input_text "
         "and answers[].input_text, laid out as in coqa-dev-v1.0.json", describe(at), field);
  if (it->type() != type)
    fail("{}: field '{}' is {}, expected {}", describe(at), field, it->type_name(),
         json(type).type_name());
  return *it;
}

std::string require_string(const json& object, const char* key, const StoryContext& at,
                           const std::string& field) {
  return require(object, key, json::value_t::string, at, field).get<std::string>();
}

// A list of {"input_text": ...} entries, one per turn.
std::vector<std::string> turn_texts(const json& list, size_t turns, const StoryContext& at,
                                    const std::string& field) {
  if (list.size() != turns)
    fail("{}: field '{}' has {} entries but 'questions' has {}; each turn needs exactly one",
         describe(at), field, list.size(), turns);
  std::vector<std::string> texts;
  for (size_t k = 0; k < list.size(); ++k) {
    const std::string where = fmt::format("{}[{}]", field, k);
    if (!list[k].is_object())
      fail("{}: field '{}' is {}, expected an object with 'input_text'", describe(at), where,
           list[k].type_name());
    texts.push_back(require_string(list[k], "input_text", at, where + ".input_text"));
  }
  return texts;
}

CoqaStory parse_story(const json& j, const StoryContext& where) {
  StoryContext at = where;
  if (!j.is_object()) fail("{}: is {}, expected an object", describe(at), j.type_name());
  CoqaStory story;
  story.id = require_string(j, "id", at, "id");
  at.id = story.id;
  story.source = require_string(j, "source", at, "source");
  story.story = require_string(j, "story", at, "story");
  const json& questions = require(j, "questions", json::value_t::array, at, "questions");
  if (questions.empty()) fail("{}: field 'questions' is empty", describe(at));
  const size_t turns = questions.size();
  const auto question_texts = turn_texts(questions, turns, at, "questions");
  const auto answer_texts =
      turn_texts(require(j, "answers", json::value_t::array, at, "answers"), turns, at, "answers");
  for (size_t k = 0; k < turns; ++k) story.turns.push_back({question_texts[k], answer_texts[k], {}});

  // The train split has no additional answers; the dev split has sets "0", "1", "2". nlohmann's
  // object keeps keys sorted, which is the order lm-eval's dataset features give them.
  const auto extra = j.find("additional_answers");
  if (extra == j.end()) return story;
  if (!extra->is_object())
    fail("{}: field 'additional_answers' is {}, expected an object of answer lists",
         describe(at), extra->type_name());
  for (const auto& [key, list] : extra->items()) {
    const std::string field = "additional_answers." + key;
    if (!list.is_array())
      fail("{}: field '{}' is {}, expected a list of answers", describe(at), field,
           list.type_name());
    const auto texts = turn_texts(list, turns, at, field);
    for (size_t k = 0; k < turns; ++k) story.turns[k].additional_answers.push_back(texts[k]);
  }
  return story;
}

std::string file_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool equal_ignoring_case(const std::string& a, const std::string& b) {
  return py::lower(utf8_to_u32(a)) == py::lower(utf8_to_u32(b));
}

const CoqaTurn& turn_of(const CoqaStory& story, int turn) {
  if (turn < 1 || static_cast<size_t>(turn) > story.turns.size())
    fail("CoQA story '{}' has turns 1..{}, not {}", story.id, story.turns.size(), turn);
  return story.turns[turn - 1];
}

}  // namespace

std::vector<CoqaStory> parse_coqa(std::string_view json_text, const std::string& path) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    fail("'{}' is not valid JSON ({}); point the config at coqa-dev-v1.0.json as downloaded "
         "from the CoQA site", path, e.what());
  }
  const json* list = &root;
  if (root.is_object()) {
    const auto data = root.find("data");
    if (data == root.end() || !data->is_array())
      fail("'{}': expected {{\"version\", \"data\": [stories]}} or a list of stories, but the "
           "object has no list 'data'", path);
    list = &*data;
  }
  if (!list->is_array())
    fail("'{}': expected a list of CoQA stories, found {}", path, list->type_name());
  if (list->empty()) fail("'{}': holds no stories", path);

  std::vector<CoqaStory> stories;
  std::set<std::string> ids;
  for (size_t i = 0; i < list->size(); ++i) {
    stories.push_back(parse_story((*list)[i], {path, i, ""}));
    // Results are matched across configs by (id, turn), so ids must be unique.
    if (!ids.insert(stories.back().id).second)
      fail("'{}': story id '{}' appears twice (#{}); ids must be unique", path,
           stories.back().id, i);
  }
  return stories;
}

CoqaData load_coqa(const std::string& path) {
  const std::string bytes = read_file(path);
  CoqaData data;
  data.info.path = path;
  data.info.sha256 = sha256_hex(bytes);
  data.info.bytes = static_cast<int64_t>(bytes.size());
  data.info.is_official_dev = data.info.sha256 == kCoqaDevSha256 &&
                              data.info.bytes == kCoqaDevBytes;
  data.info.dev_name_mismatch = file_name(path) == kCoqaDevFileName && !data.info.is_official_dev;
  data.stories = parse_coqa(bytes, path);
  return data;
}

const char* coqa_mode_name(CoqaMode mode) {
  switch (mode) {
    case CoqaMode::lm_eval: return "lm_eval";
    case CoqaMode::official: return "official";
  }
  return "?";
}

CoqaMode parse_coqa_mode(std::string_view name) {
  for (CoqaMode mode : {CoqaMode::lm_eval, CoqaMode::official})
    if (name == coqa_mode_name(mode)) return mode;
  fail("unknown CoQA mode '{}'; valid: lm_eval (last turn per story, as lm-eval) or official "
       "(every turn, as evaluate-v1.0.py)", name);
}

std::string coqa_prompt(const CoqaStory& story, int turn) {
  const CoqaTurn& last = turn_of(story, turn);
  std::string prompt = story.story + "\n\n";
  for (int k = 0; k + 1 < turn; ++k)
    prompt += "Q: " + story.turns[k].question + "\n\nA: " + story.turns[k].answer + "\n\n";
  prompt += "Q: " + last.question + "\n\nA:";
  return prompt;
}

std::vector<std::string> lm_eval_golds(const CoqaStory& story, int turn) {
  const CoqaTurn& t = turn_of(story, turn);
  std::vector<std::string> golds = {t.answer};
  for (const auto& extra : t.additional_answers) {
    const bool seen = std::any_of(golds.begin(), golds.end(), [&](const std::string& g) {
      return equal_ignoring_case(g, extra);
    });
    if (!seen) golds.push_back(extra);
  }
  return golds;
}

std::vector<std::string> official_golds(const CoqaStory& story, int turn) {
  const CoqaTurn& t = turn_of(story, turn);
  std::vector<std::string> golds = {t.answer};
  golds.insert(golds.end(), t.additional_answers.begin(), t.additional_answers.end());
  return golds;
}

std::vector<CoqaSample> build_samples(const std::vector<CoqaStory>& stories, CoqaMode mode) {
  std::vector<CoqaSample> samples;
  for (size_t i = 0; i < stories.size(); ++i) {
    const CoqaStory& story = stories[i];
    const int last = static_cast<int>(story.turns.size());
    const int first = mode == CoqaMode::lm_eval ? last : 1;
    for (int turn = first; turn <= last; ++turn) {
      samples.push_back({story.id, turn, story.source, i, coqa_prompt(story, turn),
                         mode == CoqaMode::lm_eval ? lm_eval_golds(story, turn)
                                                   : official_golds(story, turn)});
    }
  }
  return samples;
}

std::vector<IndexRange> shard_stories(size_t stories, size_t shard_size) {
  if (shard_size == 0) fail("CoQA shard size must be at least 1");
  std::vector<IndexRange> shards;
  for (size_t begin = 0; begin < stories; begin += shard_size)
    shards.push_back({begin, std::min(stories, begin + shard_size)});
  return shards;
}

std::vector<CoqaSample> samples_of_stories(const std::vector<CoqaSample>& samples,
                                           IndexRange stories) {
  std::vector<CoqaSample> out;
  for (const CoqaSample& s : samples)
    if (s.story_index >= stories.begin && s.story_index < stories.end) out.push_back(s);
  return out;
}

}  // namespace qsweep
