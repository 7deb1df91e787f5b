#pragma once
// `qsweep run`: rank 0 hands out work units dynamically and gathers results into the store;
// every rank, rank 0 included, evaluates (rank 0 on a second thread), so N GPUs give N workers.
#include "qsweep/store/store.h"
#include "qsweep/sweep/mpi.h"
#include "qsweep/sweep/rank_watch.h"
#include "qsweep/sweep/sweep_spec.h"

#include <string>

namespace qsweep {

struct RunOptions {
  std::string store;          // overrides the job's store path when set
  bool retry_failed = false;  // redo units that failed in an earlier run
  WatchOptions watch;         // when rank 0 gives up on a rank (rank_watch.h)
};

// Exit codes of `qsweep run` (2 is an error before the sweep starts, from main());
// docs/reliability.md says what each means and what to do.
inline constexpr int kExitUnitsFailed = 1;  // every unit ran; some failed (--retry-failed)
inline constexpr int kExitIncomplete = 3;   // some units never ran: every rank left the sweep
inline constexpr int kExitStoreWrite = 4;   // the disk refused the store (full, quota, ulimit -f)
inline constexpr int kExitStopped = 5;      // SIGTERM/SIGUSR1: stopped, resubmit to resume
inline constexpr int kExitRankLost = 6;     // every unit done, but a rank was given up on

struct SweepOutcome {
  int code = 0;             // the process exit code: 0 when every unit succeeded, else one above
  // A thread of this process may still be inside a unit (a stopped sweep, a hung device): the
  // process must end with _Exit, running no destructors under it.
  bool abandoned = false;
  // MPI_Finalize would wait forever for a lost rank: skipped then.
  bool can_finalize = true;
};

SweepOutcome run_sweep(const SweepSpec& spec, const RunOptions& options, const MpiContext& mpi);

// The exit code a store's unit statuses call for, said in the log when it is not 0.
int sweep_exit_code(const Results& results);

}  // namespace qsweep
