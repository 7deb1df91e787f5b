#pragma once
// Statistics over per-sample scores and raw benchmark samples: the mean with lm-eval's standard
// error, a Student-t and a BCa bootstrap 95% interval, a paired bootstrap against a baseline
// config, and order statistics as numpy computes them.
#include "qsweep/util/results.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qsweep {

struct BootstrapOptions {
  size_t resamples = 10000;
  uint64_t seed = 1234;
};

double mean(const std::vector<double>& x);
// lm-eval's mean_stderr: sample standard deviation (ddof=1) / sqrt(n). NaN when n < 2, where
// lm-eval writes "N/A".
double mean_stderr(const std::vector<double>& x);
// mean +- t(0.975, n-1) * stderr. NaN bounds when n < 2.
Interval t_interval95(const std::vector<double>& x);
// Bias-corrected and accelerated percentile interval of the mean (Efron & Tibshirani 14.3,
// jackknife acceleration), as scipy.stats.bootstrap(method="BCa") defines it. All-equal data
// give [value, value]; a bootstrap distribution lying entirely on one side of the mean (no
// bias correction defined) falls back to the plain 2.5/97.5 percentile interval.
Interval bca_interval95(const std::vector<double>& x, const BootstrapOptions& options);
MeanSummary summarize_mean(const std::vector<double>& x, const BootstrapOptions& options);

// Paired bootstrap of mean(config - baseline); the two vectors are aligned sample by sample.
// Interval: BCa of the mean delta. p-value: two-sided bootstrap test with the deltas centred on
// zero (H0): p = (1 + #{b : |mean*_b - mean| >= |mean|}) / (B + 1), where mean*_b is the mean
// of resample b of the deltas, so mean*_b - mean is a draw from the centred distribution.
PairedComparison paired_bootstrap(const std::vector<double>& config,
                                  const std::vector<double>& baseline,
                                  const BootstrapOptions& options);

// numpy.percentile(x, q) with its default linear interpolation; q in [0, 100].
double percentile(std::vector<double> x, double q);
// Summary of raw benchmark samples (median, p90, p99 as numpy; stdev with ddof=1, NaN for one
// sample). No samples give n = 0 and zeros: a figure that was not measured, e.g. GPU power on CPU.
SampleStats sample_stats(const std::vector<double>& values);

// EM and F1 summaries of one config's samples and, given the baseline config's samples, the
// paired comparison with them. Samples are matched by (id, turn) and processed in that order,
// so the result does not depend on the order records arrived in; a config whose samples do not
// match the baseline's one for one is an error.
ConfigMetrics compute_config_metrics(const std::string& name,
                                     const std::vector<SampleRecord>& samples,
                                     const std::vector<SampleRecord>* baseline_samples,
                                     const BootstrapOptions& options,
                                     const std::string& baseline_name = "baseline");

}  // namespace qsweep
