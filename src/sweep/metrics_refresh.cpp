#include "metrics_refresh.h"

#include "qsweep/eval/stats.h"

namespace qsweep {
namespace {

bool coqa_complete(const Results& results, const std::string& config) {
  bool any = false;
  for (const auto& u : results.units) {
    if (u.config != config || u.kind != UnitKind::coqa) continue;
    if (u.status != UnitStatus::done) return false;
    any = true;
  }
  return any;
}

}  // namespace

void refresh_metrics(Store& store, const SweepSpec& spec) {
  const ConfigResults* baseline = find_config(store.results, spec.baseline);
  const bool baseline_ready = baseline && coqa_complete(store.results, spec.baseline);
  const std::vector<SampleRecord> baseline_samples =
      baseline_ready ? all_samples(*baseline) : std::vector<SampleRecord>{};
  for (const auto& config : spec.configs) {
    const ConfigResults* c = find_config(store.results, config.name);
    if (!c || !coqa_complete(store.results, config.name)) continue;
    if (c->metrics && (c->metrics->em_vs_baseline || !baseline_ready)) continue;
    BootstrapOptions options;
    options.resamples = spec.evaluation.bootstrap_resamples;
    options.seed = spec.seed;
    set_metrics(store, compute_config_metrics(config.name, all_samples(*c),
                                              baseline_ready ? &baseline_samples : nullptr,
                                              options, spec.baseline));
  }
}

}  // namespace qsweep
