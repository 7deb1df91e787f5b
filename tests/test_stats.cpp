#include "qsweep/util/error.h"
#include "qsweep/eval/stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace qsweep;

namespace {

// A skewed sample, like per-story F1 of a weak config: many zeros, a few high scores.
const std::vector<double> kScores = {0.0, 1.0, 0.5, 0.8,    0.0, 1.0, 1.0, 0.25, 0.0, 0.6667,
                                     1.0, 0.0, 0.4, 1.0,    0.0, 0.0, 0.0, 0.1,  0.0, 1.0,
                                     0.0, 0.0, 0.3333, 0.0, 0.0, 0.0, 0.9, 0.0,  0.0, 0.05};

// Reference numbers, from /usr/bin/python3 with numpy 1.24.2 / scipy 1.10.1:
//   x = np.array(kScores); n = len(x); se = x.std(ddof=1) / np.sqrt(n)
//   t = scipy.stats.t.ppf(0.975, n - 1); x.mean(), se, x.mean() - t * se, x.mean() + t * se
//   -> 0.33333333333333337 0.07699264367507214 0.17586569626291487 0.49080097040375187
//   scipy.stats.bootstrap((x,), np.mean, method="BCa", n_resamples=1_000_000,
//                         random_state=np.random.default_rng(1), vectorized=True, batch=100_000)
//   -> BCa (0.19888666666666666, 0.49722333333333335)
//   same with method="percentile" -> (0.19, 0.48611000000000004)
constexpr double kMean = 0.33333333333333337, kStderr = 0.07699264367507214;
constexpr double kTLo = 0.17586569626291487, kTHi = 0.49080097040375187;
constexpr double kBcaLo = 0.19888666666666666, kBcaHi = 0.49722333333333335;
constexpr double kPercentileLo = 0.19, kPercentileHi = 0.48611000000000004;

}  // namespace

TEST(MeanStderr, MatchesLmEvalDefinition) {
  EXPECT_NEAR(mean(kScores), kMean, 1e-15);
  EXPECT_NEAR(mean_stderr(kScores), kStderr, 1e-15);
  EXPECT_TRUE(std::isnan(mean_stderr({0.5})));
  EXPECT_THROW(mean({}), Error);
}

TEST(TInterval, MatchesScipy) {
  const Interval t = t_interval95(kScores);
  EXPECT_NEAR(t.lo, kTLo, 1e-9);
  EXPECT_NEAR(t.hi, kTHi, 1e-9);
}

TEST(BcaInterval, MatchesScipyWithinMonteCarloError) {
  // Two bootstraps with different random streams differ by Monte Carlo error only. With 100k
  // resamples here (scipy's reference used 1M), the 2.5%/97.5% quantiles of the bootstrap
  // distribution (sd sigma_b = 0.077) have sd ~ sqrt(0.025 * 0.975 / 1e5) / phi(1.96) * sigma_b
  // ~ 0.00065, plus ~0.0006 from the bias-correction estimate: ~0.0009 in all. 0.004 is over
  // four of those, and still well below the BCa-vs-percentile gap (0.009 and 0.011), so the
  // test fails if the bias correction or acceleration is wrong.
  const Interval bca = bca_interval95(kScores, {100000, 7});
  EXPECT_NEAR(bca.lo, kBcaLo, 0.004);
  EXPECT_NEAR(bca.hi, kBcaHi, 0.004);
  EXPECT_GT(std::abs(kBcaLo - kPercentileLo), 0.008);
  EXPECT_GT(std::abs(kBcaHi - kPercentileHi), 0.008);
}

TEST(BcaInterval, SameSeedSameInterval) {
  const Interval a = bca_interval95(kScores, {10000, 42});
  const Interval b = bca_interval95(kScores, {10000, 42});
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
}

TEST(BcaInterval, AllEqualDataGiveAPointInterval) {
  const Interval i = bca_interval95(std::vector<double>(50, 1.0), {10000, 1});
  EXPECT_EQ(i.lo, 1.0);
  EXPECT_EQ(i.hi, 1.0);
  const MeanSummary one = summarize_mean({0.0}, {10000, 1});
  EXPECT_EQ(one.bca95.lo, 0.0);
  EXPECT_TRUE(std::isnan(one.t95.lo));
}

TEST(BcaInterval, RejectsTooFewResamples) {
  EXPECT_THROW(bca_interval95(kScores, {100, 1}), Error);
}

TEST(PairedBootstrap, DetectsARealDifference) {
  // Config better than baseline by 0.1 on most samples, worse by 0.05 on a few.
  std::vector<double> config(kScores.size());
  for (size_t i = 0; i < kScores.size(); ++i) config[i] = kScores[i] + (i % 5 == 0 ? -0.05 : 0.1);
  const PairedComparison c = paired_bootstrap(config, kScores, {10000, 3});
  EXPECT_EQ(c.n, kScores.size());
  EXPECT_NEAR(c.mean_delta, 0.07, 1e-12);
  EXPECT_GT(c.bca95.lo, 0.0);
  EXPECT_LT(c.p_value, 0.001);
}

TEST(PairedBootstrap, DoesNotFlagANullDifference) {
  // Deltas of +-0.1 alternating: mean zero.
  std::vector<double> config(kScores.size());
  for (size_t i = 0; i < kScores.size(); ++i) config[i] = kScores[i] + (i % 2 ? 0.1 : -0.1);
  const PairedComparison c = paired_bootstrap(config, kScores, {10000, 3});
  EXPECT_NEAR(c.mean_delta, 0.0, 1e-12);
  EXPECT_LT(c.bca95.lo, 0.0);
  EXPECT_GT(c.bca95.hi, 0.0);
  EXPECT_GT(c.p_value, 0.5);
  // Identical configs: no difference at all.
  const PairedComparison same = paired_bootstrap(kScores, kScores, {10000, 3});
  EXPECT_EQ(same.p_value, 1.0);
  EXPECT_EQ(same.bca95.lo, 0.0);
  EXPECT_EQ(same.bca95.hi, 0.0);
}

TEST(SampleStatsTest, MatchesNumpy) {
  // b = np.array(values); np.median(b), np.percentile(b, 90), np.percentile(b, 99),
  // b.std(ddof=1), b.mean() -> 12.3 19.6 29.050000000000004 5.604462507680822 14.6
  const std::vector<double> values = {12.5, 11.9, 13.4, 12.2, 30.1, 12.0,
                                      12.8, 11.7, 12.1, 19.6, 12.3};
  const SampleStats s = sample_stats(values);
  EXPECT_EQ(s.n, 11u);
  EXPECT_DOUBLE_EQ(s.median, 12.3);
  EXPECT_DOUBLE_EQ(s.p90, 19.6);
  EXPECT_DOUBLE_EQ(s.p99, 29.050000000000004);
  EXPECT_NEAR(s.stdev, 5.604462507680822, 1e-12);
  EXPECT_NEAR(s.mean, 14.6, 1e-12);
  EXPECT_EQ(s.min, 11.7);
  EXPECT_EQ(s.max, 30.1);
  EXPECT_EQ(sample_stats({}).n, 0u);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 50), 2.5);
}

namespace {
std::vector<SampleRecord> records(const std::vector<double>& f1) {
  std::vector<SampleRecord> out;
  for (size_t i = 0; i < f1.size(); ++i) {
    SampleRecord r;
    r.id = "story-" + std::to_string(i);
    r.turn = 1;
    r.f1 = f1[i];
    r.em = f1[i] == 1.0;
    out.push_back(r);
  }
  return out;
}
}  // namespace

TEST(ConfigMetrics, MatchesBaselineBySampleNotByOrder) {
  const auto baseline = records(kScores);
  auto config = records(kScores);
  for (auto& r : config) r.f1 = std::min(1.0, r.f1 + 0.1);
  const ConfigMetrics in_order = compute_config_metrics("nf4", config, &baseline, {10000, 5}, "bf16");
  std::reverse(config.begin(), config.end());
  const ConfigMetrics shuffled = compute_config_metrics("nf4", config, &baseline, {10000, 5}, "bf16");
  ASSERT_TRUE(in_order.f1_vs_baseline && shuffled.f1_vs_baseline);
  EXPECT_EQ(in_order.f1_vs_baseline->baseline, "bf16");
  EXPECT_EQ(in_order.f1_vs_baseline->mean_delta, shuffled.f1_vs_baseline->mean_delta);
  EXPECT_EQ(in_order.f1_vs_baseline->bca95.lo, shuffled.f1_vs_baseline->bca95.lo);
  EXPECT_EQ(in_order.f1.bca95.hi, shuffled.f1.bca95.hi);
  EXPECT_GT(in_order.f1_vs_baseline->mean_delta, 0.0);
  EXPECT_EQ(in_order.em_vs_baseline->mean_delta, 0.0);
  EXPECT_EQ(in_order.f1.n, kScores.size());
  EXPECT_FALSE(compute_config_metrics("bf16", baseline, nullptr, {10000, 5}).em_vs_baseline);
}

TEST(ConfigMetrics, MismatchedSamplesFailNamingTheSample) {
  const auto baseline = records(kScores);
  auto config = records(kScores);
  config[3].id = "story-extra";
  try {
    compute_config_metrics("int8", config, &baseline, {10000, 5}, "bf16");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("story-extra"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
  config = records(kScores);
  config.pop_back();
  EXPECT_THROW(compute_config_metrics("int8", config, &baseline, {10000, 5}, "bf16"), Error);
  config = records(kScores);
  config[1].id = config[0].id;
  EXPECT_THROW(compute_config_metrics("int8", config, nullptr, {10000, 5}), Error);
}
