#pragma once
// The progress line rank 0 logs after every unit: units done of total, failures, elapsed, ETA.
#include "qsweep/util/results.h"

#include <chrono>
#include <cstddef>

namespace qsweep {

struct Progress {
  size_t total = 0, done = 0, failed = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  void log(const UnitResult& result);
};

}  // namespace qsweep
