// UTF-8 handling held to the same rules as Rust's `str` (which `tokenizers` uses): strict
// validation, and lossy conversion with one U+FFFD per maximal invalid subpart. text.h's helpers
// replace byte by byte, which would decode partial characters differently from `tokenizers`.
#include "tokenizer_impl.h"

namespace qsweep::tok {

bool utf8_sequence(const unsigned char* s, size_t n, size_t* len) {
  const unsigned c = s[0];
  if (c < 0x80) {
    *len = 1;
    return true;
  }
  // Allowed range of the first continuation byte excludes overlong forms and surrogates.
  size_t need = 0;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2, lo = 0xA0;
  } else if (c == 0xED) {
    need = 2, hi = 0x9F;
  } else if (c >= 0xE1 && c <= 0xEF) {
    need = 2;
  } else if (c == 0xF0) {
    need = 3, lo = 0x90;
  } else if (c == 0xF4) {
    need = 3, hi = 0x8F;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else {
    *len = 1;
    return false;
  }
  for (size_t i = 1; i <= need; ++i) {
    if (i >= n || s[i] < lo || s[i] > hi) {
      *len = i;
      return false;
    }
    lo = 0x80, hi = 0xBF;
  }
  *len = need + 1;
  return true;
}

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    if (!utf8_sequence(p + i, s.size() - i, &len)) return false;
    i += len;
  }
  return true;
}

void append_utf8_lossy(std::string& out, std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (utf8_sequence(p + i, s.size() - i, &len))
      out.append(s.data() + i, len);
    else
      out += "\xEF\xBF\xBD";
    i += len;
  }
}

char32_t decode_utf8_char(std::string_view s, size_t* len) {
  const auto c = static_cast<unsigned char>(s[0]);
  const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[k]) & 0x3F);
  *len = n;
  return cp;
}

// Unicode White_Space, as Rust's char::is_whitespace (used by added-token lstrip/rstrip).
bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

static ByteMap make_byte_map() {
  ByteMap map;
  map.to_byte.fill(-1);
  // Printable Latin-1 bytes stand for themselves; the rest take code points from 256 upwards,
  // in byte order, so no stand-in is whitespace or a control character.
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const int cp = printable ? b : next++;
    std::string utf8;
    if (cp < 0x80) {
      utf8 += static_cast<char>(cp);
    } else {
      utf8 += static_cast<char>(0xC0 | (cp >> 6));
      utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    }
    map.to_char[b] = utf8;
    map.to_byte[cp] = static_cast<int16_t>(b);
  }
  return map;
}

const ByteMap& byte_map() {
  static const ByteMap map = make_byte_map();
  return map;
}

}  // namespace qsweep::tok
