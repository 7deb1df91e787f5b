// Derived views of a store: the per-config summary table.
#include "qsweep/store/store.h"

#include "qsweep/eval/stats.h"

#include <cmath>


namespace qsweep {
std::vector<SummaryRow> summarize(const Results& results) {
  std::vector<SummaryRow> rows;
  for (const ConfigResults& c : results.configs) {
    SummaryRow row;
    row.config = c.name;
    for (const auto& [unit, samples] : c.samples) row.samples += samples.size();
    row.metrics = c.metrics;
    row.perplexity = c.perplexity;
    row.kl_vs_baseline = c.kl_vs_baseline;
    if (c.bench) {
      row.model_bytes = c.bench->model_bytes;
      if (!std::isnan(c.bench->bits_per_weight)) row.bits_per_weight = c.bench->bits_per_weight;
      if (!c.bench->prefill_ms.empty()) row.prefill_ms = sample_stats(c.bench->prefill_ms);
      if (!c.bench->decode_ms_per_token.empty())
        row.decode_ms_per_token = sample_stats(c.bench->decode_ms_per_token);
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
