// Rank 0's bookkeeping of where a run's time goes (src/sweep/sweep_timing.h): each part lands
// in its own column, per rank and per unit kind, and preparations are counted per config and rank.
#include "sweep/sweep_timing.h"

#include <gtest/gtest.h>

using namespace qsweep;

namespace {

WorkerReport first(double startup) { return {std::nullopt, "", false, "dev", "", startup, 0}; }

WorkerReport done(const std::string& key, const std::string& config, int rank, double seconds,
                  double waited, std::optional<std::string> prepared_from = std::nullopt) {
  UnitResult r;
  r.key = key;
  r.config = config;
  r.rank = rank;
  r.host = "node" + std::to_string(rank);
  r.seconds = seconds;
  if (prepared_from) r.prepare = PrepareRecord{key, rank, r.host, *prepared_from, 1.5, 2.5, ""};
  return {r, config, false, "", "", 0, waited};
}

}  // namespace

TEST(SweepTiming, BusyGoesToTheUnitsKindAndWaitsAndEndIdleAddUpToWall) {
  SweepTiming t;
  t.ranks = 2;
  note_first_report(t, 0, first(1));
  note_first_report(t, 1, first(2));
  note_report(t, 0, done("g/prepare", "g", 0, 10, 0.5, "quantized"), UnitKind::prepare);
  note_report(t, 0, done("g/coqa/0000", "g", 0, 4, 0.25), UnitKind::coqa);
  note_report(t, 1, done("g/sanity", "g", 1, 3, 0.5, "cache"), UnitKind::sanity);
  note_report(t, 1, done("g/bench", "g", 1, 6, 1), UnitKind::bench);
  note_left(t, 1, 12.5);
  note_left(t, 0, 16);
  const TimingSegment s = close_segment(t, 16, "finished");

  ASSERT_EQ(s.rank_times.size(), 2u);
  const RankTiming& r0 = s.rank_times[0];
  EXPECT_EQ(r0.units, 2);
  EXPECT_EQ(r0.host, "node0");
  EXPECT_DOUBLE_EQ(r0.busy_prepare_seconds, 10);
  EXPECT_DOUBLE_EQ(r0.busy_coqa_seconds, 4);
  EXPECT_DOUBLE_EQ(r0.busy_seconds, 14);
  EXPECT_DOUBLE_EQ(r0.wait_seconds, 0.75);
  EXPECT_DOUBLE_EQ(r0.end_idle_seconds, 0);
  const RankTiming& r1 = s.rank_times[1];
  EXPECT_DOUBLE_EQ(r1.busy_sanity_seconds, 3);
  EXPECT_DOUBLE_EQ(r1.busy_bench_seconds, 6);
  EXPECT_DOUBLE_EQ(r1.end_idle_seconds, 3.5);
  EXPECT_DOUBLE_EQ(r1.startup_seconds + r1.busy_seconds + r1.wait_seconds + r1.end_idle_seconds,
                   16);
  EXPECT_EQ(s.units, 4);
  EXPECT_DOUBLE_EQ(s.busy_seconds, 23);
  EXPECT_DOUBLE_EQ(s.efficiency, 23.0 / 32);
  EXPECT_EQ(s.ended, "finished");
}

TEST(SweepTiming, PreparationsAreCountedPerConfigAndRank) {
  SweepTiming t;
  t.ranks = 3;
  note_report(t, 0, done("g/prepare", "g", 0, 10, 0, "quantized"), UnitKind::prepare);
  note_report(t, 1, done("g/coqa/0000", "g", 1, 2, 0, "cache"), UnitKind::coqa);
  note_report(t, 1, done("f/coqa/0000", "f", 1, 2, 0, "loaded"), UnitKind::coqa);
  note_report(t, 1, done("g/coqa/0001", "g", 1, 2, 0, "cache"), UnitKind::coqa);  // reloaded
  note_report(t, 1, done("g/coqa/0002", "g", 1, 2, 0), UnitKind::coqa);           // held
  const TimingSegment s = close_segment(t, 20, "finished");

  ASSERT_EQ(s.preparations.size(), 3u);  // (f, 1), (g, 0), (g, 1)
  EXPECT_EQ(s.preparations[0].config, "f");
  EXPECT_EQ(s.preparations[0].count, 1);
  EXPECT_EQ(s.preparations[1].rank, 0);
  EXPECT_EQ(s.preparations[1].quantized, 1);
  EXPECT_DOUBLE_EQ(s.preparations[1].quantize_seconds, 2.5);
  EXPECT_EQ(s.preparations[2].rank, 1);
  EXPECT_EQ(s.preparations[2].count, 2);
  EXPECT_EQ(s.preparations[2].quantized, 0);
  EXPECT_EQ(s.rank_times[1].preparations, 3);
  EXPECT_DOUBLE_EQ(s.rank_times[1].load_seconds, 4.5);
  // A rank that never reported is still one of the ranks the efficiency divides by.
  EXPECT_EQ(s.rank_times[2].units, 0);
  EXPECT_DOUBLE_EQ(s.efficiency, 18.0 / 60);
}

TEST(SweepTiming, ARankStillInAUnitWhenStoppedHasNoEndIdle) {
  SweepTiming t;
  t.ranks = 2;
  note_left(t, 0, 5);
  note_left(t, 0, 7);  // the first leave counts: a rank given up on and then heard again
  const TimingSegment s = close_segment(t, 9, "stopped by SIGTERM");
  EXPECT_DOUBLE_EQ(s.rank_times[0].end_idle_seconds, 4);
  EXPECT_DOUBLE_EQ(s.rank_times[1].end_idle_seconds, 0);
}

TEST(SweepTiming, TableHasALinePerRankAndTheEfficiency) {
  SweepTiming t;
  t.ranks = 2;
  note_report(t, 1, done("g/coqa/0000", "g", 1, 5, 0), UnitKind::coqa);
  const std::string table = format_timing_table(close_segment(t, 10, "finished"));
  EXPECT_NE(table.find("   1     1"), std::string::npos) << table;
  EXPECT_NE(table.find("parallel efficiency 25.0%"), std::string::npos) << table;
}
