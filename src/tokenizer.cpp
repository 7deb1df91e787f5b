// Hugging Face tokenizer.json, as the `tokenizers` library runs it for Llama-family models:
// added-token splitting, normalizer, pre-tokenizer, BPE model, post-processor and decoder.
// Written here because no C++ implementation of the format is packaged for Debian; the ids are
// checked against `tokenizers` itself by tests/parity/tokenizer_parity.py.
#include "qsweep/tokenizer.h"

#include "qsweep/error.h"
#include "qsweep/text.h"

#include <nlohmann/json.hpp>
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace qsweep {
namespace {

using nlohmann::json;

// A compiled PCRE2 pattern (UTF + Unicode properties, JIT where available).
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail("{}: regex '{}' does not compile at offset {}: {}", where, pattern, offset,
           reinterpret_cast<char*>(message));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // an interpreter fallback is fine
  }
  Regex(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code_); }

  // Byte ranges [begin, end) of every non-overlapping match, left to right.
  std::vector<std::pair<size_t, size_t>> matches(const std::string& text) const {
    std::vector<std::pair<size_t, size_t>> out;
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0;
    while (start <= text.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                                 start, 0, data, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
      const size_t b = ovector[0], e = ovector[1];
      if (e == b) {  // an empty match: step over one UTF-8 character
        start = b + 1;
        while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
        continue;
      }
      out.emplace_back(b, e);
      start = e;
    }
    pcre2_match_data_free(data);
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
};

// GPT-2's byte-level alphabet: every byte gets a printable character.
struct ByteAlphabet {
  std::array<std::string, 256> to_char;
  std::unordered_map<char32_t, uint8_t> to_byte;
  ByteAlphabet() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const char32_t c = printable ? char32_t(b) : char32_t(256 + extra++);
      to_char[b] = u32_to_utf8(std::u32string(1, c));
      to_byte[c] = static_cast<uint8_t>(b);
    }
  }
};
const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// "<0x0A>" -> 10; -1 for any other token.
int byte_token_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  return std::stoi(token.substr(3, 2), nullptr, 16);
}

// transformers' clean_up_tokenization: spaces before punctuation and English contractions.
std::string clean_up_spaces(std::string s) {
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
           {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
    s = replace_all(std::move(s), from, to);
  return s;
}

}  // namespace

// Each normalizer, pre-tokenizer and decoder component as data; one switch runs each list.
enum class StepKind { prepend, replace, split, byte_level, metaspace, byte_fallback, fuse, strip };

struct Step {
  StepKind kind;
  std::string text, with;            // prepend: text; replace: text -> with; metaspace: text
  std::shared_ptr<const Regex> regex;  // split; byte_level with use_regex
  bool add_prefix_space = false;     // byte_level
  std::string prepend_scheme;        // metaspace: always | first | never
  bool split = false;                // metaspace
  int strip_start = 0, strip_stop = 0;
};

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
};

struct Tokenizer::Impl {
  std::string source;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  std::unordered_map<uint64_t, std::pair<int, int32_t>> merges;  // (left, right) -> (rank, merged)
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  std::optional<int32_t> unk;
  std::vector<AddedToken> added;     // longest first, for matching
  std::array<bool, 256> added_first_byte{};  // skips most positions without comparing
  std::unordered_set<int32_t> special_ids;
  std::vector<Step> normalizers, pre_tokenizers, decoders;
  std::vector<std::string> template_single;  // special token names and "$A"
  bool clean_up = false;
  std::optional<int32_t> bos, eos;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  std::vector<int32_t> bpe(const std::string& piece) const;
  std::vector<std::string> pre_tokenize(const std::string& segment, bool at_start) const;
  std::string normalize(std::string s) const;
  void encode_segment(const std::string& segment, bool at_start, std::vector<int32_t>& out) const;
};

namespace {

const json& member(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) fail("{}: missing key '{}'", where, key);
  return j.at(key);
}

std::vector<Step> parse_steps(const json& j, const std::string& where, const char* list_key) {
  std::vector<Step> steps;
  if (j.is_null()) return steps;
  const std::string type = member(j, "type", where).get<std::string>();
  if (type == "Sequence") {
    for (const auto& item : member(j, list_key, where)) {
      auto more = parse_steps(item, where, list_key);
      steps.insert(steps.end(), more.begin(), more.end());
    }
    return steps;
  }
  Step s{};
  auto pattern_text = [&](const json& p) {
    if (p.contains("String")) return p["String"].get<std::string>();
    return member(p, "Regex", where + " pattern").get<std::string>();
  };
  if (type == "Prepend") {
    s.kind = StepKind::prepend;
    s.text = member(j, "prepend", where);
  } else if (type == "Replace") {
    s.kind = StepKind::replace;
    const json& p = member(j, "pattern", where);
    if (!p.contains("String"))
      fail("{}: Replace with a Regex pattern is not supported (only String patterns)", where);
    s.text = p["String"];
    s.with = member(j, "content", where);
  } else if (type == "Split") {
    s.kind = StepKind::split;
    const std::string behavior = j.value("behavior", "Isolated");
    if (behavior != "Isolated" || j.value("invert", false))
      fail("{}: Split behavior '{}' (invert {}) is not supported (Isolated, not inverted)", where,
           behavior, j.value("invert", false));
    const json& p = member(j, "pattern", where);
    s.regex = std::make_shared<Regex>(p.contains("String") ? pattern_text(p) : pattern_text(p), where);
  } else if (type == "ByteLevel") {
    s.kind = StepKind::byte_level;
    s.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) s.regex = std::make_shared<Regex>(kGpt2Pattern, where);
  } else if (type == "Metaspace") {
    s.kind = StepKind::metaspace;
    s.text = j.value("replacement", "\u2581");
    s.prepend_scheme = j.value("prepend_scheme", j.value("add_prefix_space", true) ? "always" : "never");
    s.split = j.value("split", true);
  } else if (type == "ByteFallback") {
    s.kind = StepKind::byte_fallback;
  } else if (type == "Fuse") {
    s.kind = StepKind::fuse;
  } else if (type == "Strip") {
    s.kind = StepKind::strip;
    s.text = member(j, "content", where);
    s.strip_start = j.value("start", 0);
    s.strip_stop = j.value("stop", 0);
  } else {
    fail("{}: component type '{}' is not supported (supported: Sequence, Prepend, Replace, Split, "
         "ByteLevel, Metaspace, ByteFallback, Fuse, Strip)", where, type);
  }
  steps.push_back(std::move(s));
  return steps;
}

}  // namespace

std::string Tokenizer::Impl::normalize(std::string s) const {
  for (const Step& step : normalizers) {
    switch (step.kind) {
      case StepKind::prepend: if (!s.empty()) s = step.text + s; break;
      case StepKind::replace: s = replace_all(std::move(s), step.text, step.with); break;
      default: break;  // parse_steps only lets normalizer kinds through
    }
  }
  return s;
}

namespace {

// Pieces split around every match, matches and gaps both kept (the Isolated behaviour).
std::vector<std::string> split_isolated(const std::string& piece, const Regex& regex) {
  std::vector<std::string> out;
  size_t last = 0;
  for (const auto& [b, e] : regex.matches(piece)) {
    if (b > last) out.push_back(piece.substr(last, b - last));
    out.push_back(piece.substr(b, e - b));
    last = e;
  }
  if (last < piece.size()) out.push_back(piece.substr(last));
  return out;
}

std::string to_byte_alphabet(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) out += byte_alphabet().to_char[c];
  return out;
}

// Metaspace: spaces become the replacement character; with `split`, each replacement starts a
// new piece.
std::vector<std::string> metaspace(std::string piece, const Step& step, bool first) {
  piece = replace_all(std::move(piece), " ", step.text);
  const bool prepend = step.prepend_scheme == "always" || (step.prepend_scheme == "first" && first);
  if (prepend && piece.compare(0, step.text.size(), step.text) != 0) piece = step.text + piece;
  if (!step.split) return {piece};
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t at = piece.find(step.text, 1); at != std::string::npos; at = piece.find(step.text, at + 1)) {
    out.push_back(piece.substr(start, at - start));
    start = at;
  }
  out.push_back(piece.substr(start));
  return out;
}

}  // namespace

std::vector<std::string> Tokenizer::Impl::pre_tokenize(const std::string& segment, bool at_start) const {
  std::vector<std::string> pieces = {segment};
  for (const Step& step : pre_tokenizers) {
    std::vector<std::string> next;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string piece = pieces[i];
      switch (step.kind) {
        case StepKind::split: {
          auto parts = split_isolated(piece, *step.regex);
          next.insert(next.end(), parts.begin(), parts.end());
          break;
        }
        case StepKind::byte_level: {
          if (step.add_prefix_space && piece.compare(0, 1, " ") != 0) piece = " " + piece;
          for (const auto& part : step.regex ? split_isolated(piece, *step.regex) : std::vector<std::string>{piece})
            next.push_back(to_byte_alphabet(part));
          break;
        }
        case StepKind::metaspace: {
          auto parts = metaspace(piece, step, at_start && i == 0);
          next.insert(next.end(), parts.begin(), parts.end());
          break;
        }
        default: next.push_back(piece); break;
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

std::vector<int32_t> Tokenizer::Impl::bpe(const std::string& piece) const {
  if (ignore_merges) {
    if (auto it = vocab.find(piece); it != vocab.end()) return {it->second};
  }
  std::vector<int32_t> symbols;
  bool last_unknown = false;
  for (size_t i = 0; i < piece.size();) {
    size_t len = 1;
    while (i + len < piece.size() && (static_cast<unsigned char>(piece[i + len]) & 0xC0) == 0x80) ++len;
    const std::string ch = piece.substr(i, len);
    i += len;
    if (auto it = vocab.find(ch); it != vocab.end()) {
      symbols.push_back(it->second);
      last_unknown = false;
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      std::vector<int32_t> bytes;
      for (unsigned char b : ch) {
        auto it = vocab.find(fmt::format("<0x{:02X}>", b));
        all = all && it != vocab.end();
        if (all) bytes.push_back(it->second);
      }
      if (all) {
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        last_unknown = false;
        continue;
      }
    }
    if (!unk) fail("{}: no token for character '{}' and no unk_token", source, ch);
    if (!(fuse_unk && last_unknown)) symbols.push_back(*unk);
    last_unknown = true;
  }
  // Merge the adjacent pair of lowest rank, leftmost first, until no pair has a merge.
  for (;;) {
    int best_rank = -1;
    size_t best = 0;
    int32_t merged = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merges.find(pair_key(symbols[i], symbols[i + 1]));
      if (it != merges.end() && (best_rank < 0 || it->second.first < best_rank)) {
        best_rank = it->second.first;
        best = i;
        merged = it->second.second;
      }
    }
    if (best_rank < 0) break;
    symbols[best] = merged;
    symbols.erase(symbols.begin() + best + 1);
  }
  return symbols;
}

void Tokenizer::Impl::encode_segment(const std::string& segment, bool at_start,
                                     std::vector<int32_t>& out) const {
  for (const std::string& piece : pre_tokenize(normalize(segment), at_start)) {
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      if (auto it = cache.find(piece); it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    const std::vector<int32_t> ids = bpe(piece);
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() < 200000) cache.emplace(piece, ids);
  }
}

namespace {

std::optional<std::string> token_name(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return std::nullopt;
}

void load_model_section(Tokenizer::Impl& t, const json& model, const std::string& where) {
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") fail("{}: model type '{}' is not supported (BPE)", where, type);
  for (const auto& [token, id] : member(model, "vocab", where).items()) t.vocab[token] = id.get<int32_t>();
  t.byte_fallback = model.value("byte_fallback", false);
  t.fuse_unk = model.value("fuse_unk", false);
  t.ignore_merges = model.value("ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string())
    if (auto it = t.vocab.find(model["unk_token"].get<std::string>()); it != t.vocab.end()) t.unk = it->second;
  int rank = 0;
  for (const auto& m : member(model, "merges", where)) {
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos) fail("{}: merge '{}' is not 'left right'", where, s);
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else {
      left = m.at(0).get<std::string>();
      right = m.at(1).get<std::string>();
    }
    const auto l = t.vocab.find(left), r = t.vocab.find(right), merged = t.vocab.find(left + right);
    if (l == t.vocab.end() || r == t.vocab.end() || merged == t.vocab.end())
      fail("{}: merge #{} '{} {}' uses a token that is not in the vocab", where, rank, left, right);
    t.merges.emplace(Tokenizer::Impl::pair_key(l->second, r->second), std::make_pair(rank++, merged->second));
  }
}

void load_post_processor(Tokenizer::Impl& t, const json& j, const std::string& where) {
  if (j.is_null()) return;
  const std::string type = member(j, "type", where).get<std::string>();
  if (type == "Sequence") {
    for (const auto& p : member(j, "processors", where)) load_post_processor(t, p, where);
  } else if (type == "TemplateProcessing") {
    for (const auto& item : member(j, "single", where)) {
      if (item.contains("SpecialToken")) t.template_single.push_back(item["SpecialToken"]["id"]);
      else t.template_single.push_back("$A");
    }
  } else if (type != "ByteLevel") {
    fail("{}: post_processor type '{}' is not supported (TemplateProcessing, ByteLevel, Sequence)",
         where, type);
  }
}

// transformers' LlamaTokenizerFast rebuilds its template from add_bos_token / add_eos_token.
void apply_llama_template_flags(Tokenizer::Impl& t, const json& config) {
  const std::string cls = config.value("tokenizer_class", "");
  if (cls.find("LlamaTokenizer") == std::string::npos) return;
  if (!config.contains("add_bos_token") && !config.contains("add_eos_token")) return;
  t.template_single.clear();
  if (config.value("add_bos_token", true) && t.bos) t.template_single.push_back(t.id_to_token[*t.bos]);
  t.template_single.push_back("$A");
  if (config.value("add_eos_token", false) && t.eos) t.template_single.push_back(t.id_to_token[*t.eos]);
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_files(const std::string& tokenizer_json, const std::string& config_json) {
  auto t = std::make_unique<Impl>();
  t->source = tokenizer_json;
  json j;
  try {
    j = json::parse(read_file(tokenizer_json));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON ({})", tokenizer_json, e.what());
  }
  const std::string& where = tokenizer_json;
  load_model_section(*t, member(j, "model", where), where + " key 'model'");
  t->normalizers = parse_steps(j.value("normalizer", json()), where + " key 'normalizer'", "normalizers");
  t->pre_tokenizers = parse_steps(j.value("pre_tokenizer", json()), where + " key 'pre_tokenizer'", "pretokenizers");
  t->decoders = parse_steps(j.value("decoder", json()), where + " key 'decoder'", "decoders");
  for (const auto& a : j.value("added_tokens", json::array())) {
    AddedToken token{a.at("content"), a.at("id"), a.value("special", false)};
    t->vocab[token.content] = token.id;
    if (token.special) t->special_ids.insert(token.id);
    if (!token.content.empty()) t->added_first_byte[static_cast<unsigned char>(token.content[0])] = true;
    t->added.push_back(token);
  }
  std::sort(t->added.begin(), t->added.end(),
            [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  int32_t size = 0;
  for (const auto& [token, id] : t->vocab) size = std::max(size, id + 1);
  t->id_to_token.resize(size);
  for (const auto& [token, id] : t->vocab) t->id_to_token[id] = token;
  load_post_processor(*t, j.value("post_processor", json()), where + " key 'post_processor'");

  json config = json::object();
  if (!config_json.empty()) {
    try {
      config = json::parse(read_file(config_json));
    } catch (const json::parse_error& e) {
      fail("{}: not valid JSON ({})", config_json, e.what());
    }
  }
  if (auto name = token_name(config, "bos_token")) t->bos = t->vocab.count(*name) ? std::optional(t->vocab[*name]) : std::nullopt;
  if (auto name = token_name(config, "eos_token")) t->eos = t->vocab.count(*name) ? std::optional(t->vocab[*name]) : std::nullopt;
  if (!t->bos)
    for (const auto& item : t->template_single)
      if (item != "$A") t->bos = t->vocab.at(item);
  t->clean_up = config.value("clean_up_tokenization_spaces", false);
  apply_llama_template_flags(*t, config);
  for (const auto& item : t->template_single)
    if (item != "$A" && !t->vocab.count(item))
      fail("{}: post_processor names special token '{}' that is not in the vocab", where, item);
  return Tokenizer(std::move(t));
}

Tokenizer Tokenizer::from_model_dir(const std::string& dir) {
  const std::string file = dir + "/tokenizer.json";
  if (!std::filesystem::exists(file))
    fail("{}: not found; qsweep reads Hugging Face fast tokenizers (tokenizer.json). Save one with "
         "transformers' AutoTokenizer.from_pretrained(...).save_pretrained(DIR)", file);
  const std::string config = dir + "/tokenizer_config.json";
  return from_files(file, std::filesystem::exists(config) ? config : "");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text_view, bool add_special_tokens) const {
  const Impl& t = *impl_;
  const std::string text(text_view);
  std::vector<int32_t> body;
  size_t segment_start = 0, pos = 0;
  while (pos < text.size()) {
    const AddedToken* hit = nullptr;
    if (t.added_first_byte[static_cast<unsigned char>(text[pos])])
      for (const AddedToken& a : t.added)
      if (text.compare(pos, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++pos;
      continue;
    }
    if (pos > segment_start) t.encode_segment(text.substr(segment_start, pos - segment_start), segment_start == 0, body);
    body.push_back(hit->id);
    pos += hit->content.size();
    segment_start = pos;
  }
  if (segment_start < text.size()) t.encode_segment(text.substr(segment_start), segment_start == 0, body);
  if (!add_special_tokens || t.template_single.empty()) return body;
  std::vector<int32_t> out;
  for (const auto& item : t.template_single) {
    if (item == "$A") out.insert(out.end(), body.begin(), body.end());
    else out.push_back(t.vocab.at(item));
  }
  return out;
}

namespace {

// Byte-level tokens back to bytes; a token with a character outside the alphabet (an added
// token's text) contributes its own UTF-8 bytes, as `tokenizers` does.
std::string byte_level_bytes(const std::string& token) {
  std::string out;
  for (char32_t c : utf8_to_u32(token)) {
    auto it = byte_alphabet().to_byte.find(c);
    if (it == byte_alphabet().to_byte.end()) return token;
    out += static_cast<char>(it->second);
  }
  return out;
}

// Runs of <0xNN> tokens become the text they encode, or U+FFFD per byte when not valid UTF-8.
std::vector<std::string> byte_fallback(const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string bytes;
  size_t count = 0;
  auto flush = [&] {
    if (count == 0) return;
    out.push_back(is_valid_utf8(bytes) ? bytes : replace_all(std::string(count, '\x01'), "\x01", "\xEF\xBF\xBD"));
    bytes.clear();
    count = 0;
  };
  for (const auto& t : tokens) {
    const int b = byte_token_value(t);
    if (b < 0) {
      flush();
      out.push_back(t);
    } else {
      bytes += static_cast<char>(b);
      ++count;
    }
  }
  flush();
  return out;
}

std::string strip_token(std::string t, const Step& s) {
  for (int i = 0; i < s.strip_start && t.compare(0, s.text.size(), s.text) == 0; ++i) t.erase(0, s.text.size());
  for (int i = 0; i < s.strip_stop && t.size() >= s.text.size() &&
                  t.compare(t.size() - s.text.size(), s.text.size(), s.text) == 0; ++i)
    t.resize(t.size() - s.text.size());
  return t;
}

std::vector<std::string> run_decoder(std::vector<std::string> tokens, const Step& step) {
  switch (step.kind) {
    case StepKind::byte_level: {
      std::string all;
      for (const auto& t : tokens) all += byte_level_bytes(t);
      return {utf8_lossy(all)};
    }
    case StepKind::replace:
      for (auto& t : tokens) t = replace_all(std::move(t), step.text, step.with);
      return tokens;
    case StepKind::byte_fallback: return byte_fallback(tokens);
    case StepKind::fuse: {
      std::string all;
      for (const auto& t : tokens) all += t;
      return {all};
    }
    case StepKind::strip:
      for (auto& t : tokens) t = strip_token(std::move(t), step);
      return tokens;
    case StepKind::metaspace:
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = replace_all(std::move(tokens[i]), step.text, " ");
        if (i == 0 && step.prepend_scheme != "never" && tokens[i].compare(0, 1, " ") == 0) tokens[i].erase(0, 1);
      }
      return tokens;
    default: return tokens;
  }
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= t.id_to_token.size())
      fail("{}: token id {} is outside the vocabulary (size {})", t.source, id, t.id_to_token.size());
    if (skip_special_tokens && t.special_ids.count(id)) continue;
    tokens.push_back(t.id_to_token[id]);
  }
  for (const Step& step : t.decoders) tokens = run_decoder(std::move(tokens), step);
  std::string text;
  for (const auto& s : tokens) text += s;
  text = utf8_lossy(text);
  return t.clean_up ? clean_up_spaces(std::move(text)) : text;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& t = *impl_;
  if (id < 0 || static_cast<size_t>(id) >= t.id_to_token.size() || t.special_ids.count(id)) return "";
  const std::string& token = t.id_to_token[id];
  const bool has_byte_fallback = std::any_of(t.decoders.begin(), t.decoders.end(), [](const Step& s) {
    return s.kind == StepKind::byte_fallback;
  });
  if (has_byte_fallback && byte_token_value(token) >= 0)
    return std::string(1, static_cast<char>(byte_token_value(token)));
  std::string out = token;
  for (const Step& step : t.decoders) {
    if (step.kind == StepKind::byte_level) return byte_level_bytes(token);
    if (step.kind == StepKind::replace) out = replace_all(std::move(out), step.text, step.with);
    if (step.kind == StepKind::metaspace) out = replace_all(std::move(out), step.text, " ");
  }
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->vocab.find(std::string(token));
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(int32_t id) const { return impl_->special_ids.count(id) > 0; }
size_t Tokenizer::vocab_size() const { return impl_->id_to_token.size(); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::string Tokenizer::source() const { return impl_->source; }

}  // namespace qsweep
