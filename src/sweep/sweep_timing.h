#pragma once
// Rank 0's account of where a run's time goes, kept while the sweep runs and closed into the
// store's timing segment (qsweep/store/timing.h) at its end. Each part of a rank's time is
// measured on its own, so that they adding up to the wall time is a check, not a definition:
// the worker times its start and its waits for work (WorkerReport), its unit times each unit,
// and rank 0 times the end (from a rank's last report to the last rank leaving). Pure
// bookkeeping, no MPI, so it is tested on its own.
#include "qsweep/store/timing.h"
#include "qsweep/sweep/protocol.h"

#include <map>
#include <string>
#include <utility>

namespace qsweep {

struct SweepTiming {
  int ranks = 0;
  std::map<int, RankTiming> by_rank;
  std::map<int, double> left_at;   // seconds from the segment's start to the report answered with stop
  std::map<std::pair<std::string, int>, PreparationCount> preparations;  // by config and rank
  int64_t store_writes = 0;
  double store_write_seconds = 0;
  double record_seconds = 0;
};

// A report from `rank`; `kind` is the kind of the unit whose result it carries, if it carries one.
void note_report(SweepTiming& t, int rank, const WorkerReport& report, UnitKind kind);
// The rank's first request, or a failed start: it carries no result.
void note_first_report(SweepTiming& t, int rank, const WorkerReport& report);
// `rank` was answered with stop (or given up on) `at` seconds into the segment.
void note_left(SweepTiming& t, int rank, double at);
// The segment as the store keeps it; `wall_seconds` from its start to the last rank leaving.
TimingSegment close_segment(const SweepTiming& t, double wall_seconds, const std::string& ended);
// One line per rank and a total, for rank 0's log at the end of a run.
std::string format_timing_table(const TimingSegment& s);

}  // namespace qsweep
