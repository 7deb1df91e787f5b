#include "metrics_refresh.h"

#include "qsweep/eval/stats.h"
#include "qsweep/util/log.h"

#include <fmt/format.h>

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

std::string metrics_settings(const SweepSpec& spec, bool baseline_ready) {
  return fmt::format("baseline={} bootstrap_resamples={} seed={}",
                     baseline_ready ? spec.baseline : "none", spec.evaluation.bootstrap_resamples,
                     spec.seed);
}

void refresh_metrics(Store& store, const SweepSpec& spec) {
  const ConfigResults* baseline = find_config(store.results, spec.baseline);
  const bool baseline_ready = baseline && coqa_complete(store.results, spec.baseline);
  const std::vector<SampleRecord> baseline_samples =
      baseline_ready ? all_samples(*baseline) : std::vector<SampleRecord>{};
  const std::string settings = metrics_settings(spec, baseline_ready);
  for (const auto& config : spec.configs) {
    const ConfigResults* c = find_config(store.results, config.name);
    if (!c || !coqa_complete(store.results, config.name)) continue;
    if (c->metrics && c->metrics_from == settings) continue;
    if (c->metrics)
      log_info("{}: metrics recomputed from its stored samples ({}; they were derived with {})",
               config.name, settings, c->metrics_from.empty() ? "unrecorded settings" : c->metrics_from);
    BootstrapOptions options;
    options.resamples = spec.evaluation.bootstrap_resamples;
    options.seed = spec.seed;
    set_metrics(store,
                compute_config_metrics(config.name, all_samples(*c),
                                       baseline_ready ? &baseline_samples : nullptr, options,
                                       spec.baseline),
                settings);
  }
}

size_t redo_stale_sanity(Store& store, const SweepSpec& spec) {
  size_t redone = 0;
  for (UnitRecord& u : store.results.units) {
    if (u.kind != UnitKind::sanity || u.status != UnitStatus::done) continue;
    ConfigResults* c = find_config(store.results, u.config);
    if (!c || c->kl_baseline == spec.baseline) continue;
    log_info("{}: run again, its KL was measured against baseline '{}', the job's is now '{}'",
             u.key, c->kl_baseline.empty() ? "unrecorded" : c->kl_baseline, spec.baseline);
    c->sanity.clear();
    c->perplexity.reset();
    c->kl_vs_baseline.reset();
    c->kl_baseline.clear();
    u.status = UnitStatus::todo;
    ++redone;
  }
  return redone;
}

}  // namespace qsweep
