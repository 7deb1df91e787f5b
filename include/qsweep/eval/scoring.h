#pragma once
// CoQA answer scoring as lm-eval's `coqa` task and the official evaluate-v1.0.py compute it: the
// SQuAD answer normalisation, exact match and token F1 (transformers' squad_metrics), the
// leave-one-out maximum over several golds, and the official per-domain aggregation.
#include "qsweep/util/results.h"

#include <string>
#include <string_view>
#include <vector>

namespace qsweep {

// lm-eval's process_results: results[0].strip().split("\n")[0], Python whitespace rules.
std::string lm_eval_postprocess(std::string_view generation);

// SQuAD normalize_answer: lower-case (Python str.lower), drop ASCII punctuation, drop the words
// a/an/the, collapse whitespace.
std::string normalize_answer(std::string_view answer);
// squad_metrics.get_tokens: the normalised answer split on whitespace ("" gives none).
std::vector<std::string> answer_tokens(std::string_view answer);

int compute_exact(std::string_view gold, std::string_view prediction);
double compute_f1(std::string_view gold, std::string_view prediction);

struct AnswerScore {
  double em = 0;
  double f1 = 0;
};
// lm-eval's compute_scores / the official _compute_turn_score: with several golds, the mean over
// each gold left out of the maximum over the others; with one, the score against it.
AnswerScore score_answer(const std::vector<std::string>& golds, std::string_view prediction);

// One row of the official script's report; em and f1 are fractions (not rounded).
struct DomainScore {
  std::string name;  // children_stories, literature, ..., in_domain, out_domain, overall
  size_t turns = 0;
  double em = 0;
  double f1 = 0;
};
// The official evaluate-v1.0.py aggregation over per-turn records (SampleRecord::source holds
// the CoQA source): the seven domains, then in_domain, out_domain, overall, in its order.
std::vector<DomainScore> official_domain_scores(const std::vector<SampleRecord>& turns);
// As the official script prints a fraction: round(100 * x, 1).
double official_percent(double fraction);

}  // namespace qsweep
