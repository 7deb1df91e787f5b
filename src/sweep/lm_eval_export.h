#pragma once
// lm-eval-style results of a sweep, one JSON file per evaluated config, beside the store:
// STORE_DIR/<store name>.lm_eval/<config>.json.
#include "qsweep/store/store.h"
#include "qsweep/sweep/sweep_spec.h"

namespace qsweep {

void write_lm_eval_files(const Store& store, const SweepSpec& spec);

}  // namespace qsweep
