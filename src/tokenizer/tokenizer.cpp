// Encoding, in the order `tokenizers` runs it: split out added tokens, normalize, pre-tokenize
// into words, BPE each word, wrap in the post-processor's special tokens. Loading is in
// tokenizer_json.cpp, decoding in tokenizer_decode.cpp.
#include "tokenizer_impl.h"
#include "qsweep/util/text.h"

#include <cctype>
#include <filesystem>

namespace qsweep {

using namespace tok;

namespace {

// A stretch of text on its way to becoming words. at_start: it begins at offset 0 of the
// original text, which Metaspace's prepend_scheme "first" asks about.
struct Piece {
  std::string text;
  bool at_start;
};

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// Start of the whitespace run that ends at `end`, not going below `floor`.
size_t whitespace_before(std::string_view text, size_t end, size_t floor) {
  while (end > floor) {
    size_t begin = end - 1;
    while (begin > floor && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
    size_t len = 0;
    if (!is_unicode_whitespace(decode_utf8_char(text.substr(begin), &len))) break;
    end = begin;
  }
  return end;
}

size_t whitespace_after(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    size_t len = 0;
    if (!is_unicode_whitespace(decode_utf8_char(text.substr(begin), &len))) break;
    begin += len;
  }
  return begin;
}

// Splits text on the added tokens of one matcher, leftmost-longest. Token ids go straight to
// `ids`; the text between them goes to on_text, in order, so ids stay in text order.
template <typename OnText>
void split_added(const Pipeline& impl, const AddedMatcher& matcher, std::string_view text,
                 bool at_start, std::vector<int32_t>& ids, OnText&& on_text) {
  size_t done = 0, i = 0;
  while (i < text.size()) {
    const AddedToken* hit = nullptr;
    for (int index : matcher.by_first_byte[static_cast<unsigned char>(text[i])]) {
      const AddedToken& t = impl.added[index];
      if (text.compare(i, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + hit->content.size();
    i = stop;
    if (hit->single_word) {
      const bool word_before = start > 0 && is_word_byte(text[start - 1]);
      const bool word_after = stop < text.size() && is_word_byte(text[stop]);
      if (word_before || word_after) continue;
    }
    if (hit->lstrip) start = whitespace_before(text, start, done);
    if (hit->rstrip) stop = i = whitespace_after(text, stop);
    if (start > done) on_text(text.substr(done, start - done), at_start && done == 0);
    ids.push_back(hit->id);
    done = stop;
  }
  if (done < text.size()) on_text(text.substr(done), at_start && done == 0);
}


std::string normalize(const Pipeline& impl, std::string_view text) {
  std::string s(text);
  for (const Normalizer& n : impl.normalizers) {
    if (n.kind == NormalizerKind::Prepend) {
      if (!s.empty()) s.insert(0, n.text);
    } else if (!n.regex) {
      replace_all(s, n.text, n.content);
    } else {
      std::vector<std::pair<size_t, size_t>> matches;
      n.regex->find_all(s, matches);
      std::string out;
      size_t pos = 0;
      for (auto [begin, end] : matches) out.append(s, pos, begin - pos).append(n.content), pos = end;
      s = out.append(s, pos, std::string::npos);
    }
  }
  return s;
}

// Split with behavior Isolated: every match and every gap between matches is a piece.
void split_isolated(const Regex& regex, const Piece& piece, std::vector<Piece>& out) {
  std::vector<std::pair<size_t, size_t>> matches;
  regex.find_all(piece.text, matches);
  size_t pos = 0;
  for (auto [begin, end] : matches) {
    if (begin > pos) out.push_back({piece.text.substr(pos, begin - pos), piece.at_start && pos == 0});
    out.push_back({piece.text.substr(begin, end - begin), piece.at_start && begin == 0});
    pos = end;
  }
  if (pos < piece.text.size()) out.push_back({piece.text.substr(pos), piece.at_start && pos == 0});
}

void byte_level(const PreTokenizer& p, Piece piece, std::vector<Piece>& out) {
  if (p.add_prefix_space && piece.text[0] != ' ') piece.text.insert(0, " ");
  std::vector<Piece> words;
  if (p.regex)
    split_isolated(*p.regex, piece, words);
  else
    words.push_back(std::move(piece));
  const ByteMap& map = byte_map();
  for (Piece& w : words) {
    std::string mapped;
    mapped.reserve(w.text.size() * 2);
    for (unsigned char b : w.text) mapped += map.to_char[b];
    out.push_back({std::move(mapped), w.at_start});
  }
}

void metaspace(const PreTokenizer& p, Piece piece, std::vector<Piece>& out) {
  replace_all(piece.text, " ", p.replacement);
  const bool starts = piece.text.compare(0, p.replacement.size(), p.replacement) == 0;
  if (!starts && (p.prepend_scheme == PrependScheme::Always ||
                  (p.prepend_scheme == PrependScheme::First && piece.at_start)))
    piece.text.insert(0, p.replacement);
  if (!p.split) {
    out.push_back(std::move(piece));
    return;
  }
  // Each replacement character starts a new word (MergedWithNext).
  size_t begin = 0;
  for (size_t hit = piece.text.find(p.replacement, 1); hit != std::string::npos;
       hit = piece.text.find(p.replacement, hit + p.replacement.size())) {
    out.push_back({piece.text.substr(begin, hit - begin), piece.at_start && begin == 0});
    begin = hit;
  }
  out.push_back({piece.text.substr(begin), piece.at_start && begin == 0});
}

std::vector<Piece> pre_tokenize(const Pipeline& impl, Piece piece) {
  std::vector<Piece> pieces, next;
  pieces.push_back(std::move(piece));
  for (const PreTokenizer& p : impl.pre_tokenizers) {
    next.clear();
    for (Piece& each : pieces) {
      if (each.text.empty()) continue;
      switch (p.kind) {
        case PreTokenizerKind::Split: split_isolated(*p.regex, each, next); break;
        case PreTokenizerKind::ByteLevel: byte_level(p, std::move(each), next); break;
        case PreTokenizerKind::Metaspace: metaspace(p, std::move(each), next); break;
      }
    }
    std::swap(pieces, next);
  }
  return pieces;
}

// Long words (whole lines for tokenizers without a pre-tokenizer) rarely repeat: not cached.
constexpr size_t kMaxCachedWord = 128;
constexpr size_t kMaxCacheEntries = 1 << 18;

void encode_word(const Pipeline& impl, const std::string& word, std::vector<int32_t>& ids) {
  const bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(impl.cache_mutex);
    if (auto it = impl.cache.find(word); it != impl.cache.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids.size();
  bpe_encode_word(impl.bpe, word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(impl.cache_mutex);
    if (impl.cache.size() >= kMaxCacheEntries) impl.cache.clear();
    impl.cache.emplace(word, std::vector<int32_t>(ids.begin() + first, ids.end()));
  }
}

void encode_text(const Pipeline& impl, std::string_view text, bool at_start,
                 std::vector<int32_t>& ids) {
  const std::string normalized = normalize(impl, text);
  split_added(impl, impl.normalized_matcher, normalized, at_start, ids,
              [&](std::string_view part, bool part_at_start) {
                for (const Piece& word : pre_tokenize(impl, {std::string(part), part_at_start}))
                  if (!word.text.empty()) encode_word(impl, word.text, ids);
              });
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_files(const std::string& tokenizer_json,
                                const std::string& tokenizer_config_json) {
  auto impl = std::make_unique<Impl>();
  load_tokenizer_json(*impl, tokenizer_json);
  if (!tokenizer_config_json.empty()) load_tokenizer_config(*impl, tokenizer_config_json);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_model_dir(const std::string& dir) {
  const std::string config = dir + "/tokenizer_config.json";
  return from_files(dir + "/tokenizer.json", std::filesystem::exists(config) ? config : "");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  // `tokenizers` only ever sees valid Unicode (a Python str); invalid bytes become U+FFFD, as
  // Python's bytes.decode(errors="replace") would make them.
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = impl_->prefix_ids;
  ids.reserve(ids.size() + text.size() / 3 + 8);
  split_added(*impl_, impl_->raw_matcher, text, true, ids,
              [&](std::string_view part, bool at_start) { encode_text(*impl_, part, at_start, ids); });
  if (add_special_tokens) ids.insert(ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  return ids;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& t : impl_->added)
    if (t.content == token) return t.id;
  auto it = impl_->bpe.vocab.find(std::string(token));
  if (it == impl_->bpe.vocab.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[id];
}

size_t Tokenizer::vocab_size() const { return impl_->tokens.size(); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::string Tokenizer::source() const { return impl_->path; }

}  // namespace qsweep
