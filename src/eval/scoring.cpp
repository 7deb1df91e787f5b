#include "qsweep/eval/scoring.h"

#include "python_str.h"
#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <utility>

namespace qsweep {
namespace {

// Python's string.punctuation: ASCII only, so curly quotes and dashes survive normalisation.
bool is_ascii_punctuation(char32_t c) {
  return c < 0x80 && std::u32string_view(U"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").find(c) !=
                         std::u32string_view::npos;
}

bool is_article(std::u32string_view word) { return word == U"a" || word == U"an" || word == U"the"; }

// re.sub(r"\b(a|an|the)\b", " ", text): a match starts and ends on word boundaries and holds
// only word characters, so it is exactly a whole run of word characters spelling an article.
std::u32string remove_articles(std::u32string_view text) {
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    if (!py::is_word(text[i])) {
      out += text[i++];
      continue;
    }
    const size_t start = i;
    while (i < text.size() && py::is_word(text[i])) ++i;
    const std::u32string_view word = text.substr(start, i - start);
    if (is_article(word)) {
      out += U' ';
    } else {
      out += word;
    }
  }
  return out;
}

std::vector<std::u32string> normalized_words(std::string_view answer) {
  std::u32string text;
  for (char32_t c : py::lower(utf8_to_u32(answer)))
    if (!is_ascii_punctuation(c)) text += c;
  return py::split(remove_articles(text));
}

struct DomainTotals {
  double em = 0, f1 = 0;
  size_t turns = 0;
};

// The official script's domains, in its report order, with the names it reports them under.
const std::vector<std::pair<std::string, std::string>> kInDomain = {
    {"mctest", "children_stories"}, {"gutenberg", "literature"}, {"race", "mid-high_school"},
    {"cnn", "news"}, {"wikipedia", "wikipedia"}};
const std::vector<std::pair<std::string, std::string>> kOutDomain = {{"reddit", "reddit"},
                                                                     {"science", "science"}};

void add(DomainTotals& sum, const DomainTotals& t) {
  sum.em += t.em;
  sum.f1 += t.f1;
  sum.turns += t.turns;
}

DomainScore domain_score(const std::string& name, const DomainTotals& t) {
  // The script divides by max(1, turns): an empty domain reports 0.
  const double turns = static_cast<double>(std::max<size_t>(1, t.turns));
  return {name, t.turns, t.em / turns, t.f1 / turns};
}

}  // namespace

std::string lm_eval_postprocess(std::string_view generation) {
  const std::u32string stripped = py::strip(utf8_to_u32(generation));
  return u32_to_utf8(std::u32string_view(stripped).substr(0, stripped.find(U'\n')));
}

std::string normalize_answer(std::string_view answer) {
  std::u32string joined;
  for (const auto& word : normalized_words(answer)) {
    if (!joined.empty()) joined += U' ';
    joined += word;
  }
  return u32_to_utf8(joined);
}

std::vector<std::string> answer_tokens(std::string_view answer) {
  std::vector<std::string> tokens;
  if (answer.empty()) return tokens;
  for (const auto& word : normalized_words(answer)) tokens.push_back(u32_to_utf8(word));
  return tokens;
}

int compute_exact(std::string_view gold, std::string_view prediction) {
  return normalize_answer(gold) == normalize_answer(prediction) ? 1 : 0;
}

double compute_f1(std::string_view gold, std::string_view prediction) {
  const auto gold_tokens = answer_tokens(gold);
  const auto pred_tokens = answer_tokens(prediction);
  // No-answer on either side: 1 if both are empty, 0 otherwise.
  if (gold_tokens.empty() || pred_tokens.empty()) return gold_tokens == pred_tokens ? 1.0 : 0.0;
  std::map<std::string, int> gold_counts;
  for (const auto& t : gold_tokens) ++gold_counts[t];
  int same = 0;
  for (const auto& t : pred_tokens) {
    auto it = gold_counts.find(t);
    if (it != gold_counts.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = 1.0 * same / pred_tokens.size();
  const double recall = 1.0 * same / gold_tokens.size();
  return (2 * precision * recall) / (precision + recall);
}

AnswerScore score_answer(const std::vector<std::string>& golds, std::string_view prediction) {
  if (golds.empty()) fail("score_answer: no gold answers to score '{}' against", prediction);
  std::vector<int> exact;
  std::vector<double> f1;
  for (const auto& gold : golds) {
    exact.push_back(compute_exact(gold, prediction));
    f1.push_back(compute_f1(gold, prediction));
  }
  if (golds.size() == 1) return {double(exact[0]), f1[0]};
  // Leave-one-out: each gold in turn is set aside and the best of the rest counts, so a
  // prediction is judged the way one more human annotator would be.
  double em_sum = 0, f1_sum = 0;
  for (size_t left_out = 0; left_out < golds.size(); ++left_out) {
    int best_em = 0;
    double best_f1 = 0;
    for (size_t k = 0; k < golds.size(); ++k) {
      if (k == left_out) continue;
      best_em = std::max(best_em, exact[k]);
      best_f1 = std::max(best_f1, f1[k]);
    }
    em_sum += best_em;
    f1_sum += best_f1;
  }
  const double n = static_cast<double>(golds.size());
  return {em_sum / n, f1_sum / n};
}

std::vector<DomainScore> official_domain_scores(const std::vector<SampleRecord>& turns) {
  std::map<std::string, DomainTotals> by_source;
  std::set<std::pair<std::string, int>> seen;
  for (const auto& r : turns) {
    const bool known = std::any_of(kInDomain.begin(), kInDomain.end(),
                                   [&](const auto& d) { return d.first == r.source; }) ||
                       std::any_of(kOutDomain.begin(), kOutDomain.end(),
                                   [&](const auto& d) { return d.first == r.source; });
    if (!known)
      fail("official CoQA scores: story '{}' has source '{}', which is none of the official "
           "domains (mctest, gutenberg, race, cnn, wikipedia, reddit, science)",
           r.id, r.source);
    if (!seen.insert({r.id, r.turn}).second)
      fail("official CoQA scores: story '{}' turn {} is scored twice; pass one record per turn",
           r.id, r.turn);
    DomainTotals& t = by_source[r.source];
    t.em += r.em;
    t.f1 += r.f1;
    ++t.turns;
  }
  std::vector<DomainScore> scores;
  DomainTotals in, out;
  for (const auto& [source, name] : kInDomain) {
    const DomainTotals& t = by_source[source];
    scores.push_back(domain_score(name, t));
    add(in, t);
  }
  for (const auto& [source, name] : kOutDomain) {
    const DomainTotals& t = by_source[source];
    scores.push_back(domain_score(name, t));
    add(out, t);
  }
  scores.push_back(domain_score("in_domain", in));
  scores.push_back(domain_score("out_domain", out));
  DomainTotals overall = in;
  add(overall, out);
  scores.push_back(domain_score("overall", overall));
  return scores;
}

double official_percent(double fraction) {
  // Python's round(x, 1) rounds the exact binary value to the nearest decimal, ties to even;
  // glibc's printf does the same, so format and read back rather than scale and std::round.
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.1f", fraction * 100);
  return std::strtod(buffer, nullptr);
}

}  // namespace qsweep
