#pragma once
// lm-eval's output files for every evaluated config of a sweep, beside the store: the config's
// `lm_eval --output_path STORE_DIR/<store name>.lm_eval/<config> --log_samples` layout.
#include "qsweep/store/store.h"
#include "qsweep/sweep/sweep_spec.h"

namespace qsweep {

void write_lm_eval_files(const Store& store, const SweepSpec& spec);

}  // namespace qsweep
