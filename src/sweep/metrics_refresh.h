#pragma once
// Everything the store derives rather than measures follows the job file as it is now. Per-config
// metrics come from all of a config's samples once its shards are in, never from shard means;
// paired comparisons need the baseline complete too, so configs are revisited when it is. Each
// config's metrics record the settings they came from (metrics_settings), and a resumed job
// whose settings differ (baseline, bootstrap_resamples, seed) recomputes them from the stored
// samples. The KL from the baseline is measured by the sanity unit, so a sanity unit run against
// another baseline is run again.
#include "qsweep/store/store.h"
#include "qsweep/sweep/sweep_spec.h"

#include <string>

namespace qsweep {

// "baseline=fp32 bootstrap_resamples=10000 seed=1234", with "baseline=none" while the baseline's
// samples are not all in (metrics without comparisons).
std::string metrics_settings(const SweepSpec& spec, bool baseline_ready);

// Computes the metrics of every config whose CoQA shards are all done and whose metrics are
// missing or were derived with other settings.
void refresh_metrics(Store& store, const SweepSpec& spec);

// Sets back to todo every done sanity unit whose KL was computed against another baseline than
// the job's, dropping its results; returns how many.
size_t redo_stale_sanity(Store& store, const SweepSpec& spec);

}  // namespace qsweep
