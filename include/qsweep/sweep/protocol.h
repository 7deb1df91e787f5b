#pragma once
// The messages between a worker and rank 0, and their wire form (JSON text). A worker's every
// request carries the result of its previous unit; rank 0 answers with a unit or with stop.
#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/util/results.h"

#include <optional>
#include <string>

namespace qsweep {

struct WorkerReport {
  std::optional<UnitResult> result;  // the unit just finished; none on the first request
  std::string held;                  // the config whose model the worker holds prepared
  bool leaving = false;              // it takes no more units (a device fault, a failed start)
  std::string device;                // first request: where it computes, for provenance
  std::string failure;               // why it could not start, when it could not
  // Where the worker's time went, measured by the worker (sweep_timing.h): its start, on the
  // first request; the wait for the unit whose result this report carries, on the others.
  double startup_seconds = 0;
  double waited_seconds = 0;
};

struct Assignment {
  std::optional<WorkUnit> unit;      // none: stop
};

// Generated text and error messages need not be valid UTF-8: bad bytes become U+FFFD rather
// than one prediction aborting the sweep.
std::string encode_report(const WorkerReport& report);
WorkerReport decode_report(const std::string& text);
std::string encode_assignment(const Assignment& assignment);
Assignment decode_assignment(const std::string& text);

}  // namespace qsweep
