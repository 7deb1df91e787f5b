// Reads Hugging Face tokenizer.json and tokenizer_config.json into Pipeline. Anything the
// pipeline cannot reproduce exactly is refused here, naming the file, the JSON key and what is
// supported, rather than tokenized slightly wrong.
#include "tokenizer_impl.h"

#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace qsweep::tok {

namespace {

using json = nlohmann::json;

// Where in which file a value sits, for error messages: "tokenizer.json: pre_tokenizer.type".
struct Where {
  const std::string& file;
  std::string key;
  Where at(std::string_view sub) const { return {file, key.empty() ? std::string(sub) : key + "." + std::string(sub)}; }
  Where at(size_t index) const { return {file, fmt::format("{}[{}]", key, index)}; }
};

[[noreturn]] void bad(const Where& w, std::string_view message) {
  fail("{}: key '{}': {}", w.file, w.key, message);
}

json parse_json_file(const std::string& path, std::string_view fix) {
  if (!std::filesystem::exists(path)) fail("{}: file not found ({})", path, fix);
  try {
    return json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    fail("{}: malformed JSON: {} ({})", path, e.what(), fix);
  }
}

const json& require(const json& obj, const char* key, const Where& w) {
  if (!obj.is_object()) bad(w, "expected a JSON object");
  auto it = obj.find(key);
  if (it == obj.end()) bad(w.at(key), "missing");
  return *it;
}

std::string get_string(const json& obj, const char* key, const Where& w, std::string fallback = "") {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_string()) bad(w.at(key), fmt::format("expected a string, got {}", it->dump()));
  return it->get<std::string>();
}

bool get_bool(const json& obj, const char* key, const Where& w, bool fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) bad(w.at(key), fmt::format("expected true or false, got {}", it->dump()));
  return it->get<bool>();
}

int32_t get_id(const json& value, const Where& w) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX)
    bad(w, fmt::format("expected a non-negative token id, got {}", value.dump()));
  return value.get<int32_t>();
}

std::string type_of(const json& obj, const Where& w) {
  const json& type = require(obj, "type", w);
  if (!type.is_string()) bad(w.at("type"), "expected a string");
  return type.get<std::string>();
}

[[noreturn]] void unsupported(const Where& w, const std::string& type, std::string_view supported) {
  bad(w.at("type"), fmt::format("'{}' is not supported (supported: {})", type, supported));
}

// {"String": "x"} or {"Regex": "x"}; returns the regex source (a literal is escaped).
std::string pattern_regex(const json& obj, const Where& w) {
  const Where pw = w.at("pattern");
  const json& pattern = require(obj, "pattern", w);
  if (pattern.contains("Regex") && pattern["Regex"].is_string()) return pattern["Regex"];
  if (pattern.contains("String") && pattern["String"].is_string()) {
    std::string escaped;
    for (char c : pattern["String"].get<std::string>()) {
      if (std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80)
        escaped += c;
      else
        escaped += '\\', escaped += c;
    }
    return escaped;
  }
  bad(pw, "expected {\"String\": ...} or {\"Regex\": ...}");
}

std::string where_text(const Where& w) { return fmt::format("{}: key '{}'", w.file, w.key); }

PrependScheme prepend_scheme(const json& obj, const Where& w) {
  // Files written before tokenizers 0.14 carry add_prefix_space instead.
  if (!obj.contains("prepend_scheme"))
    return get_bool(obj, "add_prefix_space", w, true) ? PrependScheme::Always : PrependScheme::Never;
  const std::string s = get_string(obj, "prepend_scheme", w);
  if (s == "always") return PrependScheme::Always;
  if (s == "first") return PrependScheme::First;
  if (s == "never") return PrependScheme::Never;
  bad(w.at("prepend_scheme"), fmt::format("'{}' is not one of always, first, never", s));
}

void parse_normalizer(const json& obj, const Where& w, std::vector<Normalizer>& out) {
  const std::string type = type_of(obj, w);
  if (type == "Sequence") {
    const json& list = require(obj, "normalizers", w);
    for (size_t i = 0; i < list.size(); ++i) parse_normalizer(list[i], w.at("normalizers").at(i), out);
  } else if (type == "Prepend") {
    const json& prepend = require(obj, "prepend", w);
    if (!prepend.is_string()) bad(w.at("prepend"), "expected a string");
    out.push_back({NormalizerKind::Prepend, prepend.get<std::string>(), nullptr, ""});
  } else if (type == "Replace") {
    Normalizer n{NormalizerKind::Replace, "", nullptr, get_string(obj, "content", w)};
    const json& pattern = require(obj, "pattern", w);
    if (pattern.contains("String") && pattern["String"].is_string())
      n.text = pattern["String"];
    else
      n.regex = std::make_shared<Regex>(pattern_regex(obj, w), where_text(w.at("pattern")));
    if (!n.regex && n.text.empty()) bad(w.at("pattern"), "the pattern is empty");
    out.push_back(std::move(n));
  } else {
    const bool unicode = type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD";
    bad(w.at("type"), fmt::format("'{}' is not supported (supported: Sequence, Prepend, Replace){}",
                                  type, unicode ? "; Unicode normalization is not implemented, "
                                                  "and Llama tokenizers do not use it" : ""));
  }
}

void parse_pre_tokenizer(const json& obj, const Where& w, std::vector<PreTokenizer>& out) {
  const std::string type = type_of(obj, w);
  PreTokenizer p{};
  if (type == "Sequence") {
    const json& list = require(obj, "pretokenizers", w);
    for (size_t i = 0; i < list.size(); ++i)
      parse_pre_tokenizer(list[i], w.at("pretokenizers").at(i), out);
    return;
  } else if (type == "Split") {
    const std::string behavior = get_string(obj, "behavior", w);
    if (behavior != "Isolated")
      bad(w.at("behavior"), fmt::format("'{}' is not supported (supported: Isolated)", behavior));
    if (get_bool(obj, "invert", w, false)) bad(w.at("invert"), "only false is supported");
    p.kind = PreTokenizerKind::Split;
    p.regex = std::make_shared<Regex>(pattern_regex(obj, w), where_text(w.at("pattern")));
  } else if (type == "ByteLevel") {
    p.kind = PreTokenizerKind::ByteLevel;
    p.add_prefix_space = get_bool(obj, "add_prefix_space", w, true);
    // GPT-2's pattern, used when use_regex is true.
    static const std::string gpt2 =
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    if (get_bool(obj, "use_regex", w, true)) p.regex = std::make_shared<Regex>(gpt2, "GPT-2 regex");
  } else if (type == "Metaspace") {
    p.kind = PreTokenizerKind::Metaspace;
    p.replacement = get_string(obj, "replacement", w, "\xE2\x96\x81");
    p.prepend_scheme = prepend_scheme(obj, w);
    p.split = get_bool(obj, "split", w, true);
  } else {
    unsupported(w, type, "Sequence, Split, ByteLevel, Metaspace");
  }
  out.push_back(std::move(p));
}

void parse_decoder(const json& obj, const Where& w, std::vector<Decoder>& out) {
  const std::string type = type_of(obj, w);
  Decoder d{};
  if (type == "Sequence") {
    const json& list = require(obj, "decoders", w);
    for (size_t i = 0; i < list.size(); ++i) parse_decoder(list[i], w.at("decoders").at(i), out);
    return;
  } else if (type == "ByteLevel") {
    d.kind = DecoderKind::ByteLevel;
  } else if (type == "Replace") {
    d.kind = DecoderKind::Replace;
    const json& pattern = require(obj, "pattern", w);
    if (!pattern.contains("String") || !pattern["String"].is_string() ||
        pattern["String"].get<std::string>().empty())
      bad(w.at("pattern"), "only a non-empty {\"String\": ...} pattern is supported in a decoder");
    d.pattern = pattern["String"];
    d.content = get_string(obj, "content", w);
  } else if (type == "ByteFallback") {
    d.kind = DecoderKind::ByteFallback;
  } else if (type == "Fuse") {
    d.kind = DecoderKind::Fuse;
  } else if (type == "Strip") {
    d.kind = DecoderKind::Strip;
    d.content = get_string(obj, "content", w, " ");
    d.start = require(obj, "start", w).get<int>();
    d.stop = require(obj, "stop", w).get<int>();
  } else if (type == "Metaspace") {
    d.kind = DecoderKind::Metaspace;
    d.replacement = get_string(obj, "replacement", w, "\xE2\x96\x81");
    d.prepend_scheme = prepend_scheme(obj, w);
  } else {
    unsupported(w, type, "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace");
  }
  out.push_back(std::move(d));
}

// Template ids around the sequence: the special tokens before "A" go to prefix, after it to
// suffix. A later processor in a Sequence wraps the result of an earlier one.
void parse_post_processor(const json& obj, const Where& w, Pipeline& impl) {
  const std::string type = type_of(obj, w);
  if (type == "Sequence") {
    const json& list = require(obj, "processors", w);
    for (size_t i = 0; i < list.size(); ++i)
      parse_post_processor(list[i], w.at("processors").at(i), impl);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets, which qsweep does not report.
  } else if (type == "TemplateProcessing") {
    const json& single = require(obj, "single", w);
    const json& specials = require(obj, "special_tokens", w);
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const Where iw = w.at("single").at(i);
      if (single[i].contains("Sequence")) {
        seen_sequence = true;
      } else if (single[i].contains("SpecialToken")) {
        const std::string name = get_string(require(single[i], "SpecialToken", iw), "id", iw);
        if (!specials.contains(name))
          bad(iw, fmt::format("special token '{}' is not listed in special_tokens", name));
        for (const json& id : require(specials[name], "ids", w.at("special_tokens").at(name)))
          (seen_sequence ? after : before).push_back(get_id(id, iw));
      } else {
        bad(iw, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    impl.prefix_ids.insert(impl.prefix_ids.begin(), before.begin(), before.end());
    impl.suffix_ids.insert(impl.suffix_ids.end(), after.begin(), after.end());
  } else {
    unsupported(w, type, "Sequence, ByteLevel, TemplateProcessing");
  }
}

void parse_bpe(const json& model, const Where& w, Bpe& bpe) {
  if (model.contains("type") && model["type"] != "BPE")
    unsupported(w, model["type"].dump(), "BPE");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!get_string(model, key, w).empty()) bad(w.at(key), "only null is supported");
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() > 0)
    bad(w.at("dropout"), "only null is supported (dropout makes encoding random)");
  bpe.fuse_unk = get_bool(model, "fuse_unk", w, false);
  bpe.byte_fallback = get_bool(model, "byte_fallback", w, false);
  bpe.ignore_merges = get_bool(model, "ignore_merges", w, false);

  const json& vocab = require(model, "vocab", w);
  if (!vocab.is_object()) bad(w.at("vocab"), "expected an object of token: id");
  bpe.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    bpe.vocab.emplace(it.key(), get_id(it.value(), w.at("vocab").at(it.key())));

  const std::string unk = get_string(model, "unk_token", w);
  if (!unk.empty()) {
    auto it = bpe.vocab.find(unk);
    if (it == bpe.vocab.end()) bad(w.at("unk_token"), fmt::format("'{}' is not in the vocab", unk));
    bpe.unk_id = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bpe.vocab.find(fmt::format("<0x{:02X}>", b));
    bpe.byte_ids[b] = it == bpe.vocab.end() ? -1 : it->second;
  }

  const json& merges = require(model, "merges", w);
  if (!merges.is_array()) bad(w.at("merges"), "expected an array");
  bpe.merges.reserve(merges.size());
  std::string left, right;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    // Two formats: "left right" (split on the one space) and ["left", "right"] (tokenizers >= 0.20).
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        bad(w.at("merges").at(rank), fmt::format("'{}' is not two tokens separated by a space", s));
      left = s.substr(0, space), right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0], right = m[1];
    } else {
      bad(w.at("merges").at(rank), "expected \"left right\" or [\"left\", \"right\"]");
    }
    auto l = bpe.vocab.find(left), r = bpe.vocab.find(right), merged = bpe.vocab.find(left + right);
    if (l == bpe.vocab.end() || r == bpe.vocab.end() || merged == bpe.vocab.end())
      bad(w.at("merges").at(rank), fmt::format("'{}', '{}' or their merge is not in the vocab", left, right));
    bpe.merges.emplace(merge_key(l->second, r->second), Merge{int32_t(rank), merged->second});
  }
}

void parse_added_tokens(const json& list, const Where& w, Pipeline& impl) {
  if (!list.is_array()) bad(w, "expected an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const Where iw = w.at(i);
    AddedToken t;
    t.id = get_id(require(list[i], "id", iw), iw.at("id"));
    t.content = get_string(list[i], "content", iw);
    t.special = get_bool(list[i], "special", iw, false);
    t.lstrip = get_bool(list[i], "lstrip", iw, false);
    t.rstrip = get_bool(list[i], "rstrip", iw, false);
    t.single_word = get_bool(list[i], "single_word", iw, false);
    t.normalized = get_bool(list[i], "normalized", iw, !t.special);
    if (t.content.empty()) bad(iw.at("content"), "an added token cannot be empty");
    impl.added.push_back(std::move(t));
  }
}

void build_tables(Pipeline& impl) {
  int32_t max_id = -1;
  for (const auto& [token, id] : impl.bpe.vocab) max_id = std::max(max_id, id);
  for (const auto& t : impl.added) max_id = std::max(max_id, t.id);
  impl.tokens.assign(size_t(max_id + 1), "");
  impl.special.assign(size_t(max_id + 1), 0);
  for (const auto& [token, id] : impl.bpe.vocab) impl.tokens[id] = token;
  for (size_t i = 0; i < impl.added.size(); ++i) {
    const AddedToken& t = impl.added[i];
    impl.tokens[t.id] = t.content;
    impl.special[t.id] = t.special;
    AddedMatcher& m = t.normalized ? impl.normalized_matcher : impl.raw_matcher;
    m.by_first_byte[static_cast<unsigned char>(t.content[0])].push_back(int(i));
  }
  // Longest first, so the first candidate that matches at a position is the longest one.
  for (AddedMatcher* m : {&impl.raw_matcher, &impl.normalized_matcher})
    for (auto& bucket : m->by_first_byte)
      std::sort(bucket.begin(), bucket.end(), [&](int a, int b) {
        return impl.added[a].content.size() > impl.added[b].content.size();
      });
}

// "<s>" or {"content": "<s>", ...}; nullopt when absent or null.
std::optional<int32_t> config_token(const json& config, const char* key, const Where& w,
                                    const Pipeline& impl) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  const std::string name = it->is_object() ? get_string(*it, "content", w.at(key)) : it->is_string() ? it->get<std::string>() : "";
  if (name.empty()) bad(w.at(key), "expected a token string or {\"content\": ...}");
  for (const AddedToken& t : impl.added)
    if (t.content == name) return t.id;
  auto v = impl.bpe.vocab.find(name);
  if (v == impl.bpe.vocab.end()) bad(w.at(key), fmt::format("'{}' is not a token of {}", name, impl.path));
  return v->second;
}

}  // namespace

void load_tokenizer_json(Pipeline& impl, const std::string& path) {
  impl.path = path;
  const json j = parse_json_file(
      path, "point --model at a directory with a Hugging Face tokenizer.json, or run scripts/setup.sh "
            "to fetch the Llama-3 tokenizer");
  const Where root{path, ""};
  if (!j.is_object()) bad(root, "the top level must be a JSON object");
  parse_bpe(require(j, "model", root), root.at("model"), impl.bpe);
  if (j.contains("added_tokens")) parse_added_tokens(j["added_tokens"], root.at("added_tokens"), impl);
  build_tables(impl);
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    parse_normalizer(j["normalizer"], root.at("normalizer"), impl.normalizers);
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    parse_pre_tokenizer(j["pre_tokenizer"], root.at("pre_tokenizer"), impl.pre_tokenizers);
  for (const PreTokenizer& p : impl.pre_tokenizers)
    impl.uses_byte_level = impl.uses_byte_level || p.kind == PreTokenizerKind::ByteLevel;
  if (j.contains("post_processor") && !j["post_processor"].is_null())
    parse_post_processor(j["post_processor"], root.at("post_processor"), impl);
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    impl.has_decoder = true;
    parse_decoder(j["decoder"], root.at("decoder"), impl.decoders);
  }
  for (int32_t id : impl.prefix_ids)
    if (size_t(id) >= impl.tokens.size()) bad(root.at("post_processor"), fmt::format("id {} is outside the vocab", id));
  if (!impl.prefix_ids.empty()) impl.bos = impl.prefix_ids.front();
}

void load_tokenizer_config(Pipeline& impl, const std::string& path) {
  const json j = parse_json_file(path, "pass the tokenizer_config.json that ships with the model");
  const Where root{path, ""};
  if (!j.is_object()) bad(root, "the top level must be a JSON object");
  if (auto bos = config_token(j, "bos_token", root, impl)) impl.bos = bos;
  impl.eos = config_token(j, "eos_token", root, impl);
  impl.clean_up_spaces = get_bool(j, "clean_up_tokenization_spaces", root, false);
  // transformers' LlamaTokenizerFast rebuilds the post-processor from these flags, so when the
  // config sets them they decide what encode(add_special_tokens=true) adds.
  if (j.contains("add_bos_token") || j.contains("add_eos_token")) {
    const bool add_bos = get_bool(j, "add_bos_token", root, false);
    const bool add_eos = get_bool(j, "add_eos_token", root, false);
    if (add_bos && !impl.bos) bad(root.at("add_bos_token"), "is true but no bos_token is set");
    if (add_eos && !impl.eos) bad(root.at("add_eos_token"), "is true but no eos_token is set");
    impl.prefix_ids = add_bos ? std::vector<int32_t>{*impl.bos} : std::vector<int32_t>{};
    impl.suffix_ids = add_eos ? std::vector<int32_t>{*impl.eos} : std::vector<int32_t>{};
  }
}

}  // namespace qsweep::tok
