#pragma once
// What a store records about how its results were made: versions, ranks, seed, input hashes.
#include "qsweep/store/store.h"
#include "qsweep/sweep/mpi.h"
#include "qsweep/sweep/sweep_spec.h"

#include <string>

namespace qsweep {

// Build and runtime versions, MPI size and host, seed, start time, the CoQA file's sha256.
void record_provenance(Store& store, const SweepSpec& spec, const MpiContext& mpi);

// "file sha256" per line for config.json and every weight file of each model the sweep uses, or
// "not available: why": provenance is worth a line in the store, not the sweep's results.
std::string model_hashes(const SweepSpec& spec);

}  // namespace qsweep
