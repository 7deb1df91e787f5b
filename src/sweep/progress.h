#pragma once
// The progress line rank 0 logs after every unit: units done of total, failures, elapsed, ETA,
// and for CoQA units the config's running mean EM/F1.
#include "qsweep/store/store.h"
#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/util/results.h"

#include <chrono>
#include <cstddef>
#include <map>
#include <string>

namespace qsweep {

struct Progress {
  size_t total = 0, done = 0, failed = 0;
  int workers = 1;                                  // ranks running units at once
  std::map<UnitKind, size_t> remaining;             // units still to run, by kind
  std::map<UnitKind, std::pair<double, size_t>> measured;  // seconds and count of finished ones
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  void add_pending(UnitKind kind) { ++total, ++remaining[kind]; }
  void log(const UnitResult& result, UnitKind kind, const ConfigResults* config);
};

// A unit kind's units take about the same time (a CoQA shard, a benchmark, a calibration): the
// remaining wall time is each kind's remaining units times its mean measured time, spread over
// the workers. A kind not measured yet counts at the mean of all finished units; nothing
// measured at all gives a negative value (unknown).
double eta_seconds(const Progress& p);
// "42s", "3m05s", "1h02m03s"; "?" for a negative value.
std::string format_duration(double seconds);

}  // namespace qsweep
