#pragma once
// Which unit a rank gets next. Pure bookkeeping, no MPI, so it is tested on its own.
//
// Model affinity, as llama-bench orders its runs to reload a model as rarely as possible: a rank
// gets the next unit of the config it holds prepared; else a config no other rank is on, so
// configs spread over ranks and each is loaded about once; else any unit. A unit whose config's
// prepare unit (a GPTQ/AWQ computation) or sanity unit is in flight elsewhere comes last: its
// rank would only wait for the cached checkpoint, or run a unit of a config that may be about
// to fail its sanity check (drop_config). Within a config the benchmark is handed out before
// the CoQA shards, so that a sweep ends on short shards rather than one long unit. A unit whose rank
// failed under it (a device fault: the unit is not to blame) goes back for another rank, up to
// a number of attempts, and so does a unit still in flight when its rank leaves.
#include "qsweep/sweep/sweep_spec.h"

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qsweep {

class Scheduler {
 public:
  explicit Scheduler(std::vector<WorkUnit> pending, int max_attempts = 2);

  // The next unit for `rank`, which holds `held` prepared ("" for none); none when no unit is
  // left. The unit is in flight on `rank` until finish() or leave().
  std::optional<WorkUnit> next(int rank, const std::string& held);
  // The unit in flight on `rank` ended. With `requeue` (its rank broke under it) it goes to the
  // front for another rank unless it has had max_attempts; returns whether it was requeued.
  bool finish(int rank, bool requeue = false);
  // `rank` takes no more units; a unit still in flight on it goes back to the front.
  void leave(int rank);

  // The key of the unit in flight on `rank`, if any.
  std::optional<std::string> unit_of(int rank) const;
  // Takes `config`'s units that were not handed out yet off the queue and returns them: after
  // its prepare or sanity unit failed, each of them would fail the same way.
  std::vector<WorkUnit> drop_config(const std::string& config);

  size_t pending() const { return pending_.size(); }
  size_t in_flight() const { return in_flight_.size(); }

 private:
  WorkUnit take(std::deque<WorkUnit>::iterator it, int rank);
  bool held_by_other(int rank, const std::string& config) const;
  bool waits_for_first_unit(const WorkUnit& unit) const;

  std::deque<WorkUnit> pending_;
  std::map<int, std::string> held_;
  std::map<int, WorkUnit> in_flight_;
  std::map<std::string, int> attempts_;
  int max_attempts_;
};

}  // namespace qsweep
