#include "python_str.h"

#include <algorithm>
#include <cstdint>

namespace qsweep::py {
namespace {

struct CodeRange {
  char32_t first, last;
};
struct LowerRun {
  char32_t first, last;
  int stride, delta;
};

#include "unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t c) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), c,
                                    [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != std::begin(table) && c <= (it - 1)->last;
}

char32_t lower_one(char32_t c) {
  const auto* it = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                                    [](char32_t v, const LowerRun& r) { return v < r.first; });
  if (it == std::begin(kLowerRuns)) return c;
  const LowerRun& run = *(it - 1);
  if (c > run.last || (c - run.first) % run.stride != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + run.delta);
}

bool is_cased(char32_t c) { return in_ranges(kCasedRanges, c); }
bool is_case_ignorable(char32_t c) { return in_ranges(kCaseIgnorableRanges, c); }

// Unicode's Final_Sigma context, as CPython tests it: a cased letter before the sigma (past any
// case-ignorable ones) and none after it.
bool is_final_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(s[j - 1])) --j;
  if (j == 0 || !is_cased(s[j - 1])) return false;
  size_t k = i + 1;
  while (k < s.size() && is_case_ignorable(s[k])) ++k;
  return k == s.size() || !is_cased(s[k]);
}

}  // namespace

bool is_space(char32_t c) { return in_ranges(kSpaceRanges, c); }
bool is_word(char32_t c) { return in_ranges(kWordRanges, c); }

std::u32string lower(std::u32string_view s) {
  constexpr char32_t kCapitalSigma = 0x3A3, kFinalSigma = 0x3C2, kDottedCapitalI = 0x130;
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == kCapitalSigma && is_final_sigma(s, i)) {
      out += kFinalSigma;
    } else if (s[i] == kDottedCapitalI) {
      out += U"i\u0307";  // the one mapping to two code points
    } else {
      out += lower_one(s[i]);
    }
  }
  return out;
}

std::u32string strip(std::u32string_view s) {
  size_t begin = 0, end = s.size();
  while (begin < end && is_space(s[begin])) ++begin;
  while (end > begin && is_space(s[end - 1])) --end;
  return std::u32string(s.substr(begin, end - begin));
}

std::vector<std::u32string> split(std::u32string_view s) {
  std::vector<std::u32string> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    const size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) words.emplace_back(s.substr(start, i - start));
  }
  return words;
}

}  // namespace qsweep::py
