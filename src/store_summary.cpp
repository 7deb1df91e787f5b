// Derived views of a store: the per-config summary and the statistics of benchmark samples.
#include "qsweep/store.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qsweep {
namespace {

// numpy.percentile's default (linear interpolation between closest ranks) on sorted values.
double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

SampleStats describe_samples(std::vector<double> values) {
  SampleStats s;
  s.n = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(s.n);
  s.median = percentile(values, 0.5);
  s.p90 = percentile(values, 0.9);
  s.p99 = percentile(values, 0.99);
  s.min = values.front();
  s.max = values.back();
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.stdev = s.n > 1 ? std::sqrt(squares / static_cast<double>(s.n - 1)) : 0;
  return s;
}

std::vector<SummaryRow> summarize(const Results& results) {
  std::vector<SummaryRow> rows;
  for (const ConfigResults& c : results.configs) {
    SummaryRow row;
    row.config = c.name;
    for (const auto& [unit, samples] : c.samples) row.samples += samples.size();
    row.metrics = c.metrics;
    if (c.bench) {
      row.model_bytes = c.bench->model_bytes;
      if (!c.bench->prefill_ms.empty()) row.prefill_ms = describe_samples(c.bench->prefill_ms);
      if (!c.bench->decode_ms_per_token.empty())
        row.decode_ms_per_token = describe_samples(c.bench->decode_ms_per_token);
    }
    for (const UnitRecord& u : results.units) {
      if (u.config != c.name) continue;
      row.units_done += u.status == UnitStatus::done;
      row.units_failed += u.status == UnitStatus::failed;
      row.units_todo += u.status == UnitStatus::todo;
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace qsweep
