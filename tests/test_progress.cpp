#include "sweep/progress.h"

#include <gtest/gtest.h>

using namespace qsweep;

TEST(Progress, DurationsReadAsHoursMinutesSeconds) {
  EXPECT_EQ(format_duration(42.4), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3723), "1h02m03s");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(Progress, EtaCountsEachKindAtItsOwnMeasuredTime) {
  Progress p;
  p.workers = 2;
  for (int i = 0; i < 4; ++i) p.add_pending(UnitKind::coqa);
  for (int i = 0; i < 2; ++i) p.add_pending(UnitKind::bench);
  EXPECT_LT(eta_seconds(p), 0);  // nothing measured yet: unknown
  UnitResult shard;
  shard.seconds = 10;
  p.log(shard, UnitKind::coqa, nullptr);
  // 3 shards at 10 s and 2 benchmarks not measured yet (counted at the 10 s mean), 2 workers.
  EXPECT_DOUBLE_EQ(eta_seconds(p), (3 * 10 + 2 * 10) / 2.0);
  UnitResult bench;
  bench.seconds = 100;
  p.log(bench, UnitKind::bench, nullptr);
  EXPECT_DOUBLE_EQ(eta_seconds(p), (3 * 10 + 1 * 100) / 2.0);
  EXPECT_EQ(p.done, 2u);
  EXPECT_EQ(p.total, 6u);
}
