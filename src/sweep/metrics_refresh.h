#pragma once
// Per-config metrics come from all of a config's samples once its shards are in, never from
// shard means; paired comparisons need the baseline complete too, so configs are revisited
// when it is.
#include "qsweep/store/store.h"
#include "qsweep/sweep/sweep_spec.h"

namespace qsweep {

// Computes the metrics of every config whose CoQA shards are all done and that lacks them (or
// lacks its comparison with a baseline that is now complete).
void refresh_metrics(Store& store, const SweepSpec& spec);

}  // namespace qsweep
