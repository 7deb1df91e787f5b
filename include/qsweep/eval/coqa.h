#pragma once
// The CoQA data set: reading and validating the official JSON, and turning stories into the
// prompts and gold answers that lm-eval's `coqa` task (or the official all-turns evaluation)
// scores. Everything here is model-free; the generation engine consumes CoqaSample::prompt.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qsweep {

struct CoqaTurn {
  std::string question;
  std::string answer;
  std::vector<std::string> additional_answers;  // this turn's answer in each additional set,
                                                // sets in key order ("0", "1", "2")
};

struct CoqaStory {
  std::string id;
  std::string source;  // domain: mctest, gutenberg, race, cnn, wikipedia, reddit, science
  std::string story;
  std::vector<CoqaTurn> turns;
};

struct CoqaFileInfo {
  std::string path;
  std::string sha256;
  int64_t bytes = 0;
  bool is_official_dev = false;     // byte-identical to the published coqa-dev-v1.0.json
  bool dev_name_mismatch = false;   // named coqa-dev-v1.0.json but not that file: warn
};

struct CoqaData {
  CoqaFileInfo info;
  std::vector<CoqaStory> stories;
};

// The published dev set, as recorded by lm-eval's download checksums (data/coqa/SOURCES.txt).
inline constexpr std::string_view kCoqaDevSha256 =
    "dfa367a9733ce53222918d0231d9b3bedc2b8ee831a2845f62dfc70701f2540a";
inline constexpr int64_t kCoqaDevBytes = 9090845;
inline constexpr std::string_view kCoqaDevFileName = "coqa-dev-v1.0.json";

// lm-eval's coqa generation settings (default.yaml: until "\nQ:", zero-shot; lm-eval's default
// max_gen_toks), for the engine that produces the predictions.
inline constexpr std::string_view kCoqaStopSequence = "\nQ:";
inline constexpr int kCoqaMaxGenTokens = 256;

// Reads {"version", "data": [...]} or a plain list of stories. Throws Error naming the file, the
// story id and the field when the file is not valid CoQA.
CoqaData load_coqa(const std::string& path);
// The same validation on JSON text already in memory; `path` is only used in messages.
std::vector<CoqaStory> parse_coqa(std::string_view json_text, const std::string& path);

enum class CoqaMode {
  lm_eval,   // one sample per story, its last turn, as lm-eval's `coqa`
  official,  // one sample per turn of every story, as the official evaluate-v1.0.py
};
const char* coqa_mode_name(CoqaMode mode);         // "lm_eval" or "official"
CoqaMode parse_coqa_mode(std::string_view name);  // throws for any other name

struct CoqaSample {
  std::string id;
  int turn = 0;        // 1-based
  std::string source;
  size_t story_index = 0;
  std::string prompt;  // exact bytes given to the model
  std::vector<std::string> golds;
};

// Story, the earlier turns as "Q: ...\n\nA: ...\n\n", then "Q: <question>\n\nA:" (lm-eval's
// doc_to_text for the story cut after `turn`).
std::string coqa_prompt(const CoqaStory& story, int turn);
// lm-eval's doc_to_target: the turn's answer, then each additional answer whose lower-case
// form is not yet in the list.
std::vector<std::string> lm_eval_golds(const CoqaStory& story, int turn);
// The official script's golds: the answer and every additional answer, duplicates kept.
std::vector<std::string> official_golds(const CoqaStory& story, int turn);

std::vector<CoqaSample> build_samples(const std::vector<CoqaStory>& stories, CoqaMode mode);

struct IndexRange {
  size_t begin = 0;
  size_t end = 0;  // exclusive
};
// Contiguous story ranges of at most `shard_size` stories over the first `stories` stories
// (lm-eval --limit N keeps the first N documents): the one sharding of CoQA, so a sweep's units
// and `qsweep eval --limit` cut the data set alike, and any rank computes the same shards.
std::vector<IndexRange> shard_stories(size_t stories, size_t shard_size);
// The samples of the stories in `stories` (samples are in story order).
std::vector<CoqaSample> samples_of_stories(const std::vector<CoqaSample>& samples,
                                           IndexRange stories);

}  // namespace qsweep
