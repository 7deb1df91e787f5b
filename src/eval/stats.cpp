#include "qsweep/eval/stats.h"

#include "qsweep/util/error.h"

#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <utility>

namespace qsweep {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kAlpha = 0.025;  // each tail of a 95% interval

void require_samples(const std::vector<double>& x, const char* what) {
  if (x.empty()) fail("{}: no samples", what);
}

// Uniform index in [0, n) by rejection, so draws depend only on mt19937_64's specified output
// and not on the standard library's distribution code: the same seed gives the same intervals
// with any compiler.
size_t draw_index(std::mt19937_64& rng, size_t n) {
  const uint64_t range = n;
  const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                         std::numeric_limits<uint64_t>::max() % range;
  uint64_t v;
  do v = rng();
  while (v >= limit);
  return static_cast<size_t>(v % range);
}

std::vector<double> bootstrap_means(const std::vector<double>& x, const BootstrapOptions& options) {
  if (options.resamples < 1000)
    fail("bootstrap: {} resamples is too few for a 95% interval; use 10000 or more",
         options.resamples);
  std::mt19937_64 rng(options.seed);
  std::vector<double> means(options.resamples);
  for (double& m : means) {
    double sum = 0;
    for (size_t i = 0; i < x.size(); ++i) sum += x[draw_index(rng, x.size())];
    m = sum / x.size();
  }
  return means;
}

bool all_equal(const std::vector<double>& x) {
  return std::all_of(x.begin(), x.end(), [&](double v) { return v == x.front(); });
}

// Jackknife acceleration of the mean: leave-one-out means in O(n).
double acceleration(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  double sum = 0;
  for (double v : x) sum += v;
  std::vector<double> jack(x.size());
  double jack_mean = 0;
  for (size_t i = 0; i < x.size(); ++i) jack_mean += jack[i] = (sum - x[i]) / (n - 1);
  jack_mean /= n;
  double s2 = 0, s3 = 0;
  for (double j : jack) {
    const double d = jack_mean - j;
    s2 += d * d;
    s3 += d * d * d;
  }
  return s3 / (6 * std::pow(s2, 1.5));
}

Interval bca_from_distribution(const std::vector<double>& x, const std::vector<double>& means) {
  if (all_equal(x)) return {x.front(), x.front()};
  const double theta = mean(x);
  // Share of resamples below the estimate, ties counted half (scipy's percentile of score).
  size_t below = 0, at_or_below = 0;
  for (double m : means) {
    below += m < theta;
    at_or_below += m <= theta;
  }
  const double share = (below + at_or_below) / (2.0 * means.size());
  if (share <= 0 || share >= 1)
    return {percentile(means, 100 * kAlpha), percentile(means, 100 * (1 - kAlpha))};
  const boost::math::normal normal;
  const double z0 = boost::math::quantile(normal, share);
  const double a = acceleration(x);
  const auto adjusted = [&](double z) {
    const double num = z0 + z;
    return boost::math::cdf(normal, z0 + num / (1 - a * num));
  };
  const double z_alpha = boost::math::quantile(normal, kAlpha);
  return {percentile(means, adjusted(z_alpha) * 100), percentile(means, adjusted(-z_alpha) * 100)};
}

std::map<std::pair<std::string, int>, const SampleRecord*> index_by_key(
    const std::vector<SampleRecord>& samples, const std::string& config) {
  std::map<std::pair<std::string, int>, const SampleRecord*> by_key;
  for (const auto& s : samples)
    if (!by_key.emplace(std::make_pair(s.id, s.turn), &s).second)
      fail("config '{}': sample story '{}' turn {} appears twice; each (id, turn) must be scored "
           "once", config, s.id, s.turn);
  return by_key;
}

}  // namespace

double mean(const std::vector<double>& x) {
  require_samples(x, "mean");
  double sum = 0;
  for (double v : x) sum += v;
  return sum / x.size();
}

double mean_stderr(const std::vector<double>& x) {
  require_samples(x, "mean_stderr");
  if (x.size() < 2) return kNaN;
  const double mu = mean(x);
  double ss = 0;
  for (double v : x) ss += (v - mu) * (v - mu);
  return std::sqrt(ss / (x.size() - 1)) / std::sqrt(static_cast<double>(x.size()));
}

Interval t_interval95(const std::vector<double>& x) {
  if (x.size() < 2) return {kNaN, kNaN};
  const boost::math::students_t t(static_cast<double>(x.size() - 1));
  const double half = boost::math::quantile(t, 1 - kAlpha) * mean_stderr(x);
  const double mu = mean(x);
  return {mu - half, mu + half};
}

Interval bca_interval95(const std::vector<double>& x, const BootstrapOptions& options) {
  require_samples(x, "bca_interval95");
  return bca_from_distribution(x, bootstrap_means(x, options));
}

MeanSummary summarize_mean(const std::vector<double>& x, const BootstrapOptions& options) {
  require_samples(x, "summarize_mean");
  return {x.size(), mean(x), mean_stderr(x), t_interval95(x), bca_interval95(x, options)};
}

PairedComparison paired_bootstrap(const std::vector<double>& config,
                                  const std::vector<double>& baseline,
                                  const BootstrapOptions& options) {
  if (config.size() != baseline.size())
    fail("paired bootstrap: {} config samples but {} baseline samples; they must pair up",
         config.size(), baseline.size());
  require_samples(config, "paired_bootstrap");
  std::vector<double> delta(config.size());
  for (size_t i = 0; i < delta.size(); ++i) delta[i] = config[i] - baseline[i];
  const std::vector<double> means = bootstrap_means(delta, options);
  PairedComparison result;
  result.n = delta.size();
  result.mean_delta = mean(delta);
  result.bca95 = bca_from_distribution(delta, means);
  size_t extreme = 0;
  for (double m : means) extreme += std::abs(m - result.mean_delta) >= std::abs(result.mean_delta);
  result.p_value = (1.0 + extreme) / (1.0 + means.size());
  return result;
}

double percentile(std::vector<double> x, double q) {
  require_samples(x, "percentile");
  std::sort(x.begin(), x.end());
  const double index = (q / 100) * (x.size() - 1);
  if (index >= x.size() - 1) return x.back();
  if (index <= 0) return x.front();
  const size_t below = static_cast<size_t>(std::floor(index));
  const double t = index - below, a = x[below], b = x[below + 1];
  // numpy's _lerp: interpolate from the nearer end, so q = 100 - p mirrors q = p exactly.
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

SampleStats sample_stats(const std::vector<double>& values) {
  SampleStats s;
  if (values.empty()) return s;
  s.n = values.size();
  s.mean = mean(values);
  s.median = percentile(values, 50);
  s.p90 = percentile(values, 90);
  s.p99 = percentile(values, 99);
  s.stdev = mean_stderr(values) * std::sqrt(static_cast<double>(values.size()));
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

ConfigMetrics compute_config_metrics(const std::string& name,
                                     const std::vector<SampleRecord>& samples,
                                     const std::vector<SampleRecord>* baseline_samples,
                                     const BootstrapOptions& options,
                                     const std::string& baseline_name) {
  if (samples.empty()) fail("config '{}': no CoQA samples to summarise", name);
  const auto by_key = index_by_key(samples, name);
  std::vector<double> em, f1;
  for (const auto& [key, s] : by_key) {
    em.push_back(s->em);
    f1.push_back(s->f1);
  }
  ConfigMetrics metrics;
  metrics.config = name;
  metrics.em = summarize_mean(em, options);
  metrics.f1 = summarize_mean(f1, options);
  if (!baseline_samples) return metrics;

  const auto base = index_by_key(*baseline_samples, baseline_name);
  std::vector<double> base_em, base_f1;
  for (const auto& [key, s] : by_key) {
    const auto it = base.find(key);
    if (it == base.end())
      fail("config '{}' has story '{}' turn {}, which baseline '{}' did not score; compare "
           "configs run on the same samples (same data file, mode and limit)",
           name, key.first, key.second, baseline_name);
    base_em.push_back(it->second->em);
    base_f1.push_back(it->second->f1);
  }
  if (base.size() != by_key.size())
    fail("baseline '{}' scored {} samples but config '{}' {}; compare configs run on the same "
         "samples (same data file, mode and limit)", baseline_name, base.size(), name,
         by_key.size());
  metrics.em_vs_baseline = paired_bootstrap(em, base_em, options);
  metrics.f1_vs_baseline = paired_bootstrap(f1, base_f1, options);
  metrics.em_vs_baseline->baseline = metrics.f1_vs_baseline->baseline = baseline_name;
  return metrics;
}

}  // namespace qsweep
