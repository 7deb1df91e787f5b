#include "sweep_timing.h"

#include <fmt/format.h>

namespace qsweep {
namespace {

double& busy_of(RankTiming& r, UnitKind kind) {
  switch (kind) {
    case UnitKind::prepare: return r.busy_prepare_seconds;
    case UnitKind::sanity: return r.busy_sanity_seconds;
    case UnitKind::coqa: return r.busy_coqa_seconds;
    case UnitKind::bench: return r.busy_bench_seconds;
  }
  return r.busy_coqa_seconds;
}

RankTiming& rank_of(SweepTiming& t, int rank) {
  RankTiming& r = t.by_rank[rank];
  r.rank = rank;
  return r;
}

void note_preparation(SweepTiming& t, RankTiming& r, const std::string& config,
                      const PrepareRecord& p) {
  ++r.preparations;
  r.load_seconds += p.load_seconds;
  r.quantize_seconds += p.quantize_seconds;
  PreparationCount& c = t.preparations[{config, r.rank}];
  c.config = config;
  c.rank = r.rank;
  ++c.count;
  c.quantized += p.source == "quantized";
  c.load_seconds += p.load_seconds;
  c.quantize_seconds += p.quantize_seconds;
}

}  // namespace

void note_first_report(SweepTiming& t, int rank, const WorkerReport& report) {
  rank_of(t, rank).startup_seconds = report.startup_seconds;
}

void note_report(SweepTiming& t, int rank, const WorkerReport& report, UnitKind kind) {
  RankTiming& r = rank_of(t, rank);
  const UnitResult& result = *report.result;
  r.host = result.host;
  ++r.units;
  busy_of(r, kind) += result.seconds;
  r.busy_seconds += result.seconds;
  r.wait_seconds += report.waited_seconds;
  if (result.prepare) note_preparation(t, r, result.config, *result.prepare);
}

void note_left(SweepTiming& t, int rank, double at) { t.left_at.emplace(rank, at); }

TimingSegment close_segment(const SweepTiming& t, double wall_seconds, const std::string& ended) {
  TimingSegment s;
  s.ended = ended;
  s.ranks = t.ranks;
  s.wall_seconds = wall_seconds;
  for (int rank = 0; rank < t.ranks; ++rank) {
    const auto found = t.by_rank.find(rank);
    RankTiming r = found != t.by_rank.end() ? found->second : RankTiming{};
    r.rank = rank;
    // A rank still inside a unit when the run was stopped never left: it has no end to idle in.
    if (const auto left = t.left_at.find(rank); left != t.left_at.end())
      r.end_idle_seconds = wall_seconds - left->second;
    s.units += r.units;
    s.busy_seconds += r.busy_seconds;
    s.rank_times.push_back(r);
  }
  s.efficiency = t.ranks > 0 && wall_seconds > 0 ? s.busy_seconds / (t.ranks * wall_seconds) : 0;
  for (const auto& [key, count] : t.preparations) s.preparations.push_back(count);
  s.store_writes = t.store_writes;
  s.store_write_seconds = t.store_write_seconds;
  s.record_seconds = t.record_seconds;
  return s;
}

std::string format_timing_table(const TimingSegment& s) {
  std::string out = fmt::format("{:>4} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5}\n",
                                "rank", "units", "startup", "prepare", "sanity", "coqa", "bench",
                                "wait", "end idle", "busy %", "preps");
  for (const RankTiming& r : s.rank_times)
    out += fmt::format("{:>4} {:>5} {:>8.1f}s {:>8.1f}s {:>8.1f}s {:>8.1f}s {:>8.1f}s {:>8.1f}s "
                       "{:>8.1f}s {:>8.1f}% {:>5}\n",
                       r.rank, r.units, r.startup_seconds, r.busy_prepare_seconds,
                       r.busy_sanity_seconds, r.busy_coqa_seconds, r.busy_bench_seconds,
                       r.wait_seconds, r.end_idle_seconds,
                       s.wall_seconds > 0 ? 100 * r.busy_seconds / s.wall_seconds : 0,
                       r.preparations);
  out += fmt::format("{} rank(s), {} units in {:.1f} s wall: parallel efficiency {:.1f}% (busy / "
                     "ranks x wall); rank 0 wrote the store {} times in {:.2f} s, recorded results "
                     "in {:.2f} s",
                     s.ranks, s.units, s.wall_seconds, 100 * s.efficiency, s.store_writes,
                     s.store_write_seconds, s.record_seconds);
  return out;
}

}  // namespace qsweep
