#pragma once
// `qsweep run`: rank 0 hands out work units dynamically and gathers results into the store;
// every rank, rank 0 included, evaluates (rank 0 on a second thread), so N GPUs give N workers.
#include "qsweep/store/store.h"
#include "qsweep/sweep/mpi.h"
#include "qsweep/sweep/sweep_spec.h"

#include <string>

namespace qsweep {

struct RunOptions {
  std::string store;          // overrides the job's store path when set
  bool retry_failed = false;  // redo units that failed in an earlier run
};

// Exit codes of `qsweep run` (2 is an error before the sweep starts, from main()).
inline constexpr int kExitUnitsFailed = 1;  // every unit ran; some failed (--retry-failed)
inline constexpr int kExitIncomplete = 3;   // some units never ran: every rank left the sweep

// Returns the process exit code: 0 when every unit succeeded, else one of the above.
int run_sweep(const SweepSpec& spec, const RunOptions& options, const MpiContext& mpi);

// The exit code a store's unit statuses call for, said in the log when it is not 0.
int sweep_exit_code(const Results& results);

}  // namespace qsweep
