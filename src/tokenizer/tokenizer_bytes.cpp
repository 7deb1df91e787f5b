// Character decoding, Unicode whitespace and the GPT-2 byte map used by the tokenizer.
#include "tokenizer_impl.h"

namespace qsweep::tok {

char32_t decode_utf8_char(std::string_view s, size_t* len) {
  char32_t cp = 0xFFFD;
  bool valid = false;
  *len = decode_utf8(s, 0, cp, valid);
  return valid ? cp : 0xFFFD;
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
