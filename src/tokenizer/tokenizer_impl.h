#pragma once
// Internals of qsweep::Tokenizer shared by src/tokenizer*.cpp. Each stage of the Hugging Face
// pipeline (added tokens, normalizer, pre-tokenizer, BPE model, post-processor, decoder) is a
// plain struct filled once by tokenizer_json.cpp; variation between tokenizers is data (a kind
// and its fields), not a class hierarchy.
#include "qsweep/tokenizer/tokenizer.h"

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qsweep/util/text.h"

namespace qsweep::tok {

// --- UTF-8 and the GPT-2 byte <-> character map (tokenizer_bytes.cpp) ---

// Validation and lossy repair are text.h's is_valid_utf8 and utf8_lossy (maximal-subpart rule,
// as Rust's from_utf8_lossy and Python's errors="replace").
char32_t decode_utf8_char(std::string_view s, size_t* len);  // the first character (U+FFFD if invalid)
bool is_unicode_whitespace(char32_t c);

// Byte-level BPE spells every byte as a printable character (GPT-2's bytes_to_unicode).
struct ByteMap {
  std::array<std::string, 256> to_char;   // byte -> UTF-8 of its stand-in character
  std::array<int16_t, 324> to_byte;       // stand-in code point -> byte, -1 if none
};
const ByteMap& byte_map();

// --- PCRE2 regex (tokenizer_regex.cpp) ---

class Regex {
 public:
  // `where` names the file and key the pattern came from, for the error message.
  Regex(const std::string& pattern, const std::string& where);
  // Byte ranges [begin, end) of successive non-overlapping matches; text must be valid UTF-8.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  std::shared_ptr<void> code_;  // pcre2_code_8, freed by its deleter
};

// --- BPE model (tokenizer_bpe.cpp) ---

struct Merge {
  int32_t rank;
  int32_t id;  // the merged token
};

struct Bpe {
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<uint64_t, Merge> merges;  // key: left id << 32 | right id
  std::array<int32_t, 256> byte_ids{};         // <0xNN> tokens for byte_fallback, -1 if absent
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

inline uint64_t merge_key(int32_t left, int32_t right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}
// Ids of one pre-token (word), appended to out.
void bpe_encode_word(const Bpe& bpe, std::string_view word, std::vector<int32_t>& out);

// --- pipeline stages ---

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// Finds added tokens in text, leftmost-longest as `tokenizers` does.
struct AddedMatcher {
  std::array<std::vector<int>, 256> by_first_byte;  // indexes into added, longest first
};

enum class NormalizerKind { Prepend, Replace };
struct Normalizer {
  NormalizerKind kind;
  std::string text;                   // Prepend: what to prepend; Replace: literal pattern
  std::shared_ptr<Regex> regex;       // Replace with a Regex pattern
  std::string content;                // Replace: the replacement
};

enum class PreTokenizerKind { Split, ByteLevel, Metaspace };
enum class PrependScheme { Always, First, Never };
struct PreTokenizer {
  PreTokenizerKind kind;
  std::shared_ptr<Regex> regex;       // Split pattern; ByteLevel's GPT-2 pattern if use_regex
  bool add_prefix_space = false;      // ByteLevel
  std::string replacement;            // Metaspace
  PrependScheme prepend_scheme = PrependScheme::Always;
  bool split = true;                  // Metaspace
};

enum class DecoderKind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace };
struct Decoder {
  DecoderKind kind;
  std::string pattern;                // Replace
  std::string content;                // Replace: replacement; Strip: the character stripped
  int start = 0;                      // Strip
  int stop = 0;                       // Strip
  std::string replacement;            // Metaspace
  PrependScheme prepend_scheme = PrependScheme::Always;
};

// Everything one tokenizer.json (and its config) says, ready to run.
struct Pipeline {
  std::string path;          // tokenizer.json
  tok::Bpe bpe;
  std::vector<std::string> tokens;   // id -> token string (model vocab, then added tokens)
  std::vector<uint8_t> special;      // id -> 1 for special added tokens
  std::vector<tok::AddedToken> added;
  tok::AddedMatcher raw_matcher;         // added tokens with normalized=false
  tok::AddedMatcher normalized_matcher;  // added tokens with normalized=true
  std::vector<tok::Normalizer> normalizers;
  std::vector<tok::PreTokenizer> pre_tokenizers;
  bool uses_byte_level = false;          // a ByteLevel pre-tokenizer maps bytes to characters
  std::vector<int32_t> prefix_ids;       // post-processor: ids around the sequence
  std::vector<int32_t> suffix_ids;
  bool has_decoder = false;
  std::vector<tok::Decoder> decoders;
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  bool clean_up_spaces = false;

  // Pre-token -> ids. Prompts repeat words a lot, so this is most of the speed.
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
};

void load_tokenizer_json(Pipeline& pipeline, const std::string& path);
void load_tokenizer_config(Pipeline& pipeline, const std::string& path);

}  // namespace qsweep::tok

namespace qsweep {
struct Tokenizer::Impl : tok::Pipeline {};
}  // namespace qsweep
