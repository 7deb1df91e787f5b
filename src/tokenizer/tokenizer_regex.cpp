// Pre-tokenizer regexes through PCRE2. `tokenizers` uses Oniguruma; with UTF and UCP, PCRE2 gives
// \s, \p{L}, \p{N} and (?i:...) the same Unicode meaning for the patterns Llama tokenizers use.
#include "tokenizer_impl.h"

#include "qsweep/util/error.h"

#include <pcre2.h>

namespace qsweep::tok {

Regex::Regex(const std::string& pattern, const std::string& where) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    fail("{}: cannot compile the regex at offset {}: {} (pattern: {})", where, offset,
         reinterpret_cast<char*>(message), pattern);
  }
  // JIT makes matching several times faster; without it (no JIT support) PCRE2 interprets.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
}

void Regex::find_all(std::string_view text,
                     std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_.get());
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> match(
      pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // The caller validated the UTF-8 once for the whole text.
    const int rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                               match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("regex match failed with PCRE2 error {}", rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) out.emplace_back(begin, end);
    if (end > start) {
      start = end;
    } else {
      // An empty match: step over one character so the search moves on.
      if (start == text.size()) break;
      size_t len = 1;
      while (start + len < text.size() && (static_cast<unsigned char>(text[start + len]) & 0xC0) == 0x80)
        ++len;
      start += len;
    }
  }
}

}  // namespace qsweep::tok
