#pragma once
// SIGTERM and SIGUSR1: what Slurm sends at a time limit (--signal=B:USR1@120, passed on by
// slurm/sweep.sh), at preemption and at scancel. A handler only notes the signal; rank 0's loop
// and every worker's wait look at it and stop the sweep as docs/reliability.md describes.
namespace qsweep {

// Installs the handlers (SIGTERM, SIGUSR1) in this process.
void install_stop_signals();
// The stop signal received so far, or 0.
int stop_signal();
// "SIGTERM", "SIGUSR1".
const char* stop_signal_name(int signal);

}  // namespace qsweep
