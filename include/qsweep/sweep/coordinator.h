#pragma once
// `qsweep run`: rank 0 hands out work units dynamically and gathers results into the store;
// every rank, rank 0 included, evaluates (rank 0 on a second thread), so N GPUs give N workers.
#include "qsweep/sweep/mpi.h"
#include "qsweep/sweep/sweep_spec.h"

#include <string>

namespace qsweep {

struct RunOptions {
  std::string store;          // overrides the job's store path when set
  bool retry_failed = false;  // redo units that failed in an earlier run
};

// Returns the process exit code: 0 when every unit succeeded, 1 when any failed.
int run_sweep(const SweepSpec& spec, const RunOptions& options, const MpiContext& mpi);

}  // namespace qsweep
