#include "qsweep/sweep/scheduler.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace qsweep {
namespace {

int hand_out_rank(UnitKind kind) {
  switch (kind) {
    case UnitKind::prepare: return 0;
    case UnitKind::sanity: return 1;
    case UnitKind::bench: return 2;
    case UnitKind::coqa: return 3;
  }
  return 3;
}

// Each config's units in the order prepare, sanity, bench, CoQA shards, configs as planned. The
// benchmark is one unit that cannot be split, as long as a few shards: handed out before the
// shards, it never is the last unit of a sweep, which then ends on short shards spread over the
// ranks instead of on one rank benchmarking while the others idle.
std::deque<WorkUnit> in_hand_out_order(std::vector<WorkUnit> units) {
  std::map<std::string, size_t> config_order;
  for (const WorkUnit& u : units) config_order.emplace(u.config, config_order.size());
  std::stable_sort(units.begin(), units.end(), [&](const WorkUnit& a, const WorkUnit& b) {
    return std::tuple(config_order.at(a.config), hand_out_rank(a.kind)) <
           std::tuple(config_order.at(b.config), hand_out_rank(b.kind));
  });
  return {units.begin(), units.end()};
}

}  // namespace

Scheduler::Scheduler(std::vector<WorkUnit> pending, int max_attempts)
    : pending_(in_hand_out_order(std::move(pending))), max_attempts_(max_attempts) {}

std::optional<WorkUnit> Scheduler::next(int rank, const std::string& held) {
  held_[rank] = held;
  for (auto it = pending_.begin(); it != pending_.end(); ++it)
    if (it->config == held) return take(it, rank);
  for (auto it = pending_.begin(); it != pending_.end(); ++it)
    if (!held_by_other(rank, it->config) && !waits_for_first_unit(*it)) return take(it, rank);
  for (auto it = pending_.begin(); it != pending_.end(); ++it)
    if (!waits_for_first_unit(*it)) return take(it, rank);
  if (!pending_.empty()) return take(pending_.begin(), rank);
  return std::nullopt;
}

bool Scheduler::finish(int rank, bool requeue) {
  const auto it = in_flight_.find(rank);
  if (it == in_flight_.end()) return false;
  const WorkUnit unit = it->second;
  in_flight_.erase(it);
  if (!requeue || attempts_[unit.key] >= max_attempts_) return false;
  pending_.push_front(unit);
  return true;
}

void Scheduler::leave(int rank) {
  held_.erase(rank);
  const auto it = in_flight_.find(rank);
  if (it == in_flight_.end()) return;
  pending_.push_front(it->second);
  in_flight_.erase(it);
}

std::optional<std::string> Scheduler::unit_of(int rank) const {
  const auto it = in_flight_.find(rank);
  if (it == in_flight_.end()) return std::nullopt;
  return it->second.key;
}

WorkUnit Scheduler::take(std::deque<WorkUnit>::iterator it, int rank) {
  WorkUnit unit = *it;
  pending_.erase(it);
  held_[rank] = unit.config;
  in_flight_[rank] = unit;
  ++attempts_[unit.key];
  return unit;
}

bool Scheduler::waits_for_first_unit(const WorkUnit& unit) const {
  for (const auto& [r, u] : in_flight_)
    if ((u.kind == UnitKind::prepare || u.kind == UnitKind::sanity) && u.config == unit.config)
      return true;
  return false;
}

std::vector<WorkUnit> Scheduler::drop_config(const std::string& config) {
  std::vector<WorkUnit> dropped;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->config != config) {
      ++it;
      continue;
    }
    dropped.push_back(*it);
    it = pending_.erase(it);
  }
  return dropped;
}

bool Scheduler::held_by_other(int rank, const std::string& config) const {
  for (const auto& [r, c] : held_)
    if (r != rank && c == config) return true;
  return false;
}

}  // namespace qsweep
