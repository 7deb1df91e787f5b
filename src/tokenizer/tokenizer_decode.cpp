// Decoding: ids to token strings, through the decoder chain (each step maps a list of strings to
// a list of strings, as `tokenizers` does), joined, then transformers' clean-up of spaces.
#include "tokenizer_impl.h"
#include "qsweep/util/text.h"

#include <cctype>

namespace qsweep {

using namespace tok;

namespace {

// The byte a "<0xNN>" token stands for, or -1.
int fallback_byte(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    const int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                      : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                      : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                                                                  : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Each token's characters back to the bytes they stand for; a token with a character outside
// the map (an added token, say) keeps its own UTF-8 bytes.
std::string byte_level_bytes(const std::vector<std::string>& tokens) {
  const ByteMap& map = byte_map();
  std::string bytes;
  for (const std::string& token : tokens) {
    std::string mapped;
    bool ok = true;
    for (size_t i = 0, len = 0; ok && i < token.size(); i += len) {
      const char32_t c = decode_utf8_char(std::string_view(token).substr(i), &len);
      ok = c < map.to_byte.size() && map.to_byte[c] >= 0;
      if (ok) mapped += static_cast<char>(map.to_byte[c]);
    }
    bytes += ok ? mapped : token;
  }
  return bytes;
}

std::vector<std::string> byte_fallback(const std::vector<std::string>& tokens, bool raw) {
  std::vector<std::string> out;
  std::string pending;
  auto flush = [&] {
    if (pending.empty()) return;
    if (raw || is_valid_utf8(pending))
      out.push_back(pending);
    else
      out.insert(out.end(), pending.size(), "\xEF\xBF\xBD");  // one U+FFFD per byte
    pending.clear();
  };
  for (const std::string& token : tokens) {
    const int byte = fallback_byte(token);
    if (byte >= 0) {
      pending += static_cast<char>(byte);
      continue;
    }
    flush();
    out.push_back(token);
  }
  flush();
  return out;
}


std::string strip(const std::string& token, const std::string& content, int start, int stop) {
  size_t begin = 0, end = token.size();
  for (int i = 0; i < start && token.compare(begin, content.size(), content) == 0; ++i)
    begin += content.size();
  for (int i = 0; i < stop && end >= begin + content.size() &&
                  token.compare(end - content.size(), content.size(), content) == 0;
       ++i)
    end -= content.size();
  return token.substr(begin, end - begin);
}

// raw: the bytes tokens stand for, for token_bytes(): no U+FFFD repair, no Strip, and no
// dropping of the first token's leading space.
std::vector<std::string> run_decoders(const Pipeline& impl, std::vector<std::string> tokens,
                                      bool raw) {
  for (const Decoder& d : impl.decoders) {
    switch (d.kind) {
      case DecoderKind::ByteLevel: {
        const std::string bytes = byte_level_bytes(tokens);
        tokens.assign(1, raw ? bytes : utf8_lossy(bytes));
        break;
      }
      case DecoderKind::Replace:
        for (std::string& t : tokens) replace_all(t, d.pattern, d.content);
        break;
      case DecoderKind::ByteFallback: tokens = byte_fallback(tokens, raw); break;
      case DecoderKind::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, all);
        break;
      }
      case DecoderKind::Strip:
        if (!raw)
          for (std::string& t : tokens) t = strip(t, d.content, d.start, d.stop);
        break;
      case DecoderKind::Metaspace:
        // As `tokenizers` does: every replacement character in the first token is dropped, not
        // only the leading one, unless the scheme is "never".
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool first = i == 0 && !raw && d.prepend_scheme != PrependScheme::Never;
          replace_all(tokens[i], d.replacement, first ? "" : " ");
        }
        break;
    }
  }
  return tokens;
}

// transformers' clean_up_tokenization, replacement by replacement in its order.
void clean_up_tokenization(std::string& text) {
  static const std::pair<const char*, const char*> rules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : rules) replace_all(text, from, to);
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  // Ids outside the vocab are dropped, as `tokenizers` drops them.
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= impl_->tokens.size()) continue;
    if (skip_special_tokens && impl_->special[id]) continue;
    tokens.push_back(impl_->tokens[id]);
  }
  std::string text;
  if (!impl_->has_decoder) {
    // Without a decoder `tokenizers` joins tokens with spaces.
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  } else {
    for (const std::string& t : run_decoders(*impl_, std::move(tokens), false)) text += t;
  }
  if (impl_->clean_up_spaces) clean_up_tokenization(text);
  return text;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->tokens.size() || impl_->special[id]) return "";
  if (!impl_->has_decoder) return impl_->tokens[id];
  std::string bytes;
  for (const std::string& t : run_decoders(*impl_, {impl_->tokens[id]}, true)) bytes += t;
  return bytes;
}

}  // namespace qsweep
