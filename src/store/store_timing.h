#pragma once
// /timing: one group per run segment (docs/results-schema.md). Private to the store.
#include "hdf5_io.h"
#include "qsweep/store/timing.h"

#include <vector>

namespace qsweep {

void write_timing(const H5::Group& root, const std::vector<TimingSegment>& segments);
// None from a store written before /timing existed.
std::vector<TimingSegment> read_timing(const H5::Group& root);

}  // namespace qsweep
