#pragma once
// A worker's life: start a UnitRunner, then ask for a unit, run it, and send its result with the
// next request, until rank 0 says stop.
#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/sweep/worker.h"

#include <functional>
#include <string>

namespace qsweep {

// `exchange` sends one encoded WorkerReport and returns the encoded Assignment.
void worker_loop(const SweepSpec& spec, const RankInfo& rank,
                 const std::function<std::string(const std::string&)>& exchange);

}  // namespace qsweep
