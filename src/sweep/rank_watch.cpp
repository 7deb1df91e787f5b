#include "qsweep/sweep/rank_watch.h"

#include <fmt/format.h>

#include <algorithm>

namespace qsweep {

void RankWatch::expect(int rank, double now) { starting_[rank] = now; }

void RankWatch::heard(int rank, double now) {
  const auto it = busy_.find(rank);
  if (it != busy_.end()) it->second.last_heard = now;
  const auto s = starting_.find(rank);
  if (s != starting_.end()) s->second = now;
}

void RankWatch::started(int rank, const WorkUnit& unit, double now) {
  starting_.erase(rank);
  busy_[rank] = {unit, now, now};
}

void RankWatch::finished(int rank, double seconds) {
  const auto it = busy_.find(rank);
  if (it == busy_.end()) return;
  double& longest = longest_[it->second.unit.kind];
  longest = std::max(longest, seconds);
  busy_.erase(it);
}

void RankWatch::forget(int rank) {
  busy_.erase(rank);
  starting_.erase(rank);
}

double RankWatch::deadline(UnitKind kind) const {
  const auto it = longest_.find(kind);
  const double measured = it == longest_.end() ? 0 : options_.deadline_factor * it->second;
  return std::max(options_.min_deadline, measured);
}

std::optional<std::pair<int, std::string>> RankWatch::lost(double now) const {
  for (const auto& [rank, last_heard] : starting_)
    if (now - last_heard > options_.heartbeat_timeout)
      return std::make_pair(rank, fmt::format("no heartbeat for {:.0f} s before its first report",
                                              now - last_heard));
  for (const auto& [rank, b] : busy_) {
    if (now - b.last_heard > options_.heartbeat_timeout)
      return std::make_pair(rank, fmt::format("no heartbeat for {:.0f} s while running {}",
                                              now - b.last_heard, b.unit.key));
    const double limit = deadline(b.unit.kind);
    if (now - b.since > limit)
      return std::make_pair(rank, fmt::format("{} has run {:.0f} s, past its deadline of {:.0f} s",
                                              b.unit.key, now - b.since, limit));
  }
  return std::nullopt;
}

}  // namespace qsweep
