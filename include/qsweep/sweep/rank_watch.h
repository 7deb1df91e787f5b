#pragma once
// Which ranks rank 0 should give up on. Pure bookkeeping with the time passed in, so it is
// tested on its own. Two signs of a lost rank:
// - silence: a worker sends a heartbeat every few seconds while it starts up and while it runs
//   a unit (its main thread waits for them on another thread), so a stopped process (SIGSTOP,
//   a node frozen in swap) or one cut off falls silent, also before its first report;
// - a unit far past its deadline: `factor` times the longest unit of that kind measured so far
//   in this sweep, never less than `min_deadline` (the first units of a kind, which also load
//   a model, set no deadline but the minimum). This catches a rank whose heartbeats go on but
//   whose unit never ends (a hung GPU kernel).
#include "qsweep/sweep/sweep_spec.h"

#include <map>
#include <optional>
#include <string>

namespace qsweep {

struct WatchOptions {
  double heartbeat_timeout = 120;   // seconds without a message from a busy rank
  double deadline_factor = 5;
  double min_deadline = 900;        // seconds
};

class RankWatch {
 public:
  explicit RankWatch(WatchOptions options = {}) : options_(options) {}

  // `rank` is starting up at `now`: watched for silence until its first unit (or forget).
  void expect(int rank, double now);
  // Any message from `rank` at time `now` (seconds on a steady clock).
  void heard(int rank, double now);
  // `rank` started `unit` at `now`.
  void started(int rank, const WorkUnit& unit, double now);
  // The unit on `rank` ended after `seconds`, which now count towards its kind's deadline.
  void finished(int rank, double seconds);
  // `rank` is no longer watched (it left, or was given up on).
  void forget(int rank);

  // The deadline of a unit of `kind`, in seconds.
  double deadline(UnitKind kind) const;
  // A starting or busy rank that is lost at `now` and why ("no heartbeat for 12 s before its
  // first report", "fp32/coqa/0003 has run 950 s, past its deadline of 900 s"); none when every
  // watched rank is fine.
  std::optional<std::pair<int, std::string>> lost(double now) const;

 private:
  struct Busy {
    WorkUnit unit;
    double since = 0;
    double last_heard = 0;
  };
  WatchOptions options_;
  std::map<int, Busy> busy_;
  std::map<int, double> starting_;  // rank -> last heard, before its first unit
  std::map<UnitKind, double> longest_;
};

}  // namespace qsweep
