#include "qsweep/util/error.h"
#include "qsweep/eval/scoring.h"

#include <gtest/gtest.h>

using namespace qsweep;

// Expected values below come from /usr/bin/python3 (3.11) running transformers' squad_metrics
// definitions and lm-eval's compute_scores / process_results:
//   normalize_answer(s) = white_space_fix(remove_articles(remove_punc(s.lower())))
//   with re.sub(r"\b(a|an|the)\b", " ", t), string.punctuation, " ".join(t.split())

TEST(Normalize, RemovesArticlesOnlyAsWholeWords) {
  EXPECT_EQ(normalize_answer("The Cat"), "cat");
  EXPECT_EQ(normalize_answer("a an the"), "");
  EXPECT_EQ(normalize_answer("An apple, the pear."), "apple pear");
  EXPECT_EQ(normalize_answer("theatre anthem a.b"), "theatre anthem ab");
  EXPECT_EQ(normalize_answer("3a a3 a"), "3a a3");
  // '_' is punctuation, removed before articles are looked for.
  EXPECT_EQ(normalize_answer("a_b the_end"), "ab theend");
}

TEST(Normalize, RemovesAsciiPunctuationOnly) {
  EXPECT_EQ(normalize_answer("l'an"), "lan");
  EXPECT_EQ(normalize_answer("Unknown."), "unknown");
  EXPECT_EQ(normalize_answer("“Quoted” — dash"), "“quoted” — dash");
}

TEST(Normalize, LowerCasesAndSplitsLikePythonUnicode) {
  EXPECT_EQ(normalize_answer("Théâtre a ÉLAN"), "théâtre élan");
  EXPECT_EQ(normalize_answer("ΟΔΟΣ ΣΑΣ"), "οδος σας");  // final sigma
  EXPECT_EQ(normalize_answer("ΣΑΣ."), "σας");
  EXPECT_EQ(normalize_answer("Σ"), "σ");
  EXPECT_EQ(normalize_answer("aΣ b"), "aς b");
  EXPECT_EQ(normalize_answer("AΣ\u0345 x"), "aς\u0345 x");  // case-ignorable after the sigma
  EXPECT_EQ(normalize_answer("İstanbul"), "i\u0307stanbul");
  EXPECT_EQ(normalize_answer("STRASSE Straße"), "strasse straße");
  EXPECT_EQ(normalize_answer("ǅemal"), "ǆemal");
  EXPECT_EQ(normalize_answer("ÅNGSTRÖM Ⅻ the"), "ångström ⅻ");
  EXPECT_EQ(normalize_answer("naïve the café"), "naïve café");
  EXPECT_EQ(normalize_answer("हिन्दी the ا the"), "हिन्दी ا");
  EXPECT_EQ(normalize_answer("the\u00a0cat\u3000sat"), "cat sat");
}

TEST(Normalize, EmptyAndUnknownAnswers) {
  EXPECT_EQ(normalize_answer(""), "");
  EXPECT_EQ(normalize_answer("   "), "");
  EXPECT_EQ(normalize_answer("unknown"), "unknown");
  EXPECT_TRUE(answer_tokens("").empty());
  EXPECT_TRUE(answer_tokens("the").empty());
  EXPECT_EQ(answer_tokens("Unknown."), std::vector<std::string>{"unknown"});
}

TEST(Postprocess, StripsPythonWhitespaceThenKeepsFirstLine) {
  EXPECT_EQ(lm_eval_postprocess("  \u00a0 Blue.\nQ: next"), "Blue.");
  EXPECT_EQ(lm_eval_postprocess("\n\n  red\n"), "red");
  // U+2028 is whitespace to strip() but not a "\n" to split("\n").
  EXPECT_EQ(lm_eval_postprocess("\u2003green\u2028x"), "green\u2028x");
  EXPECT_EQ(lm_eval_postprocess(""), "");
  // Only the whole generation is stripped, not the first line.
  EXPECT_EQ(lm_eval_postprocess("\u3000 the answer \u3000\nsecond"), "the answer \u3000");
  EXPECT_EQ(lm_eval_postprocess(" white"), "white");
}

TEST(ExactAndF1, MatchSquadMetrics) {
  EXPECT_EQ(compute_exact("no", "No."), 1);
  EXPECT_EQ(compute_exact("no", "yes"), 0);
  EXPECT_DOUBLE_EQ(compute_f1("the cat sat on the mat", "cat cat mat"), 0.5714285714285715);
  // Empty token lists on either side: 1 if both are empty, else 0.
  EXPECT_EQ(compute_f1("a", "the"), 1.0);
  EXPECT_EQ(compute_f1("", "the"), 1.0);
  EXPECT_EQ(compute_f1("", ""), 1.0);
  EXPECT_EQ(compute_f1("unknown", ""), 0.0);
  EXPECT_EQ(compute_f1("red", "blue"), 0.0);
}

TEST(ScoreAnswer, SingleGoldScoresDirectly) {
  const AnswerScore s = score_answer({"no"}, "No.");
  EXPECT_EQ(s.em, 1.0);
  EXPECT_EQ(s.f1, 1.0);
  EXPECT_EQ(score_answer({"no"}, "yes").f1, 0.0);
}

TEST(ScoreAnswer, SeveralGoldsUseLeaveOneOutMaximum) {
  // "almost" matches golds 1 and 2 (normalised): every leave-one-out set still holds one.
  AnswerScore s = score_answer({"Almost.", "almost", "no"}, "almost");
  EXPECT_EQ(s.em, 1.0);
  EXPECT_EQ(s.f1, 1.0);
  // "no" matches only gold 3; leaving gold 3 out scores 0, so 2 of 3.
  s = score_answer({"Almost.", "almost", "no"}, "no");
  EXPECT_DOUBLE_EQ(s.em, 2.0 / 3);
  EXPECT_DOUBLE_EQ(s.f1, 2.0 / 3);
  s = score_answer({"His hands behind his back.", "Strolling", "his hands behind his back",
                    "with his hands behind his back"},
                   "behind his back");
  EXPECT_EQ(s.em, 0.0);
  EXPECT_DOUBLE_EQ(s.f1, 0.7499999999999999);
  s = score_answer({"Pratimoksha scriptures",
                    "in the Vinaya and Patimokkha or Pratimoksha scriptures", "Brahma Net Sutra"},
                   "the Pratimoksha");
  EXPECT_EQ(s.em, 0.0);
  EXPECT_DOUBLE_EQ(s.f1, 0.5277777777777778);
  EXPECT_THROW(score_answer({}, "x"), Error);
}

namespace {
SampleRecord turn(std::string id, int t, std::string source, double em, double f1) {
  SampleRecord r;
  r.id = std::move(id);
  r.turn = t;
  r.source = std::move(source);
  r.em = em;
  r.f1 = f1;
  return r;
}
}  // namespace

TEST(OfficialScores, AggregatesByDomainInTheScriptsOrder) {
  const std::vector<SampleRecord> turns = {
      turn("s1", 1, "mctest", 1, 1),      turn("s1", 2, "mctest", 0, 0.5),
      turn("s2", 1, "cnn", 1, 1),         turn("s3", 1, "reddit", 0, 0.25),
      turn("s3", 2, "reddit", 1, 1),      turn("s4", 1, "science", 0, 0)};
  const auto scores = official_domain_scores(turns);
  ASSERT_EQ(scores.size(), 10u);
  const std::vector<std::string> names = {"children_stories", "literature", "mid-high_school",
                                          "news", "wikipedia", "reddit", "science",
                                          "in_domain", "out_domain", "overall"};
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(scores[i].name, names[i]);
  EXPECT_EQ(scores[0].turns, 2u);
  EXPECT_DOUBLE_EQ(scores[0].f1, 0.75);
  EXPECT_EQ(scores[1].turns, 0u);  // empty domain reports 0, as max(1, turns) makes it
  EXPECT_EQ(scores[1].em, 0.0);
  EXPECT_DOUBLE_EQ(scores[7].em, 2.0 / 3);           // in_domain: 3 turns
  EXPECT_DOUBLE_EQ(scores[8].f1, 1.25 / 3);          // out_domain: 3 turns
  EXPECT_EQ(scores[9].turns, 6u);
  EXPECT_DOUBLE_EQ(scores[9].em, 0.5);
}

TEST(OfficialScores, RejectsUnknownSourceAndRepeatedTurn) {
  try {
    official_domain_scores({turn("story-7", 1, "blogs", 1, 1)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("story-7"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'blogs'"), std::string::npos);
  }
  EXPECT_THROW(official_domain_scores({turn("s", 1, "cnn", 1, 1), turn("s", 1, "cnn", 0, 0)}),
               Error);
}

TEST(OfficialScores, PercentRoundsAsPythonRound) {
  // Python: round(0.0625 * 100, 1) == 6.2 (tie to even), round(0.0675 * 100, 1) == 6.8,
  // round(2 / 3 * 100, 1) == 66.7
  EXPECT_EQ(official_percent(0.0625), 6.2);
  EXPECT_EQ(official_percent(0.0675), 6.8);
  EXPECT_EQ(official_percent(2.0 / 3), 66.7);
  EXPECT_EQ(official_percent(0.12345), 12.3);
}
