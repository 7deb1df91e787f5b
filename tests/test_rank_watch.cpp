// When rank 0 gives up on a rank: silence beyond the heartbeat timeout, or a unit far past the
// deadline its kind's measured times set.
#include "qsweep/sweep/rank_watch.h"

#include <gtest/gtest.h>

using namespace qsweep;

namespace {

WorkUnit coqa(int shard) {
  return {"fp32/coqa/000" + std::to_string(shard), "fp32", UnitKind::coqa, shard, 0, 1};
}

WatchOptions options() {
  WatchOptions o;
  o.heartbeat_timeout = 10;
  o.deadline_factor = 4;
  o.min_deadline = 30;
  return o;
}

TEST(RankWatch, SilentBusyRankIsLostAfterTheHeartbeatTimeout) {
  RankWatch w(options());
  w.started(2, coqa(0), 100);
  w.heard(2, 105);
  EXPECT_FALSE(w.lost(115));
  const auto lost = w.lost(115.5);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->first, 2);
  EXPECT_EQ(lost->second, "no heartbeat for 10 s while running fp32/coqa/0000");
}

// The CI run that found this: rank 2 stopped while it loaded, the others finished every unit,
// and rank 0 waited for rank 2's first report until the test's budget ran out.
TEST(RankWatch, RankSilentBeforeItsFirstReportIsLost) {
  RankWatch w(options());
  w.expect(1, 0);
  w.expect(2, 0);
  w.heard(1, 8);
  w.heard(2, 8);
  w.heard(1, 17);
  EXPECT_FALSE(w.lost(18));
  const auto lost = w.lost(18.5);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->first, 2);
  EXPECT_EQ(lost->second, "no heartbeat for 10 s before its first report");
  w.started(2, coqa(0), 19);  // its first unit: watched as a busy rank from here
  w.forget(1);
  EXPECT_FALSE(w.lost(25));
}

TEST(RankWatch, IdleOrForgottenRanksAreNotWatched) {
  RankWatch w(options());
  w.started(1, coqa(0), 0);
  w.finished(1, 3);
  w.started(2, coqa(1), 0);
  w.forget(2);
  EXPECT_FALSE(w.lost(1000));
}

TEST(RankWatch, DeadlineFollowsTheLongestMeasuredUnitOfItsKind) {
  RankWatch w(options());
  EXPECT_EQ(w.deadline(UnitKind::coqa), 30);  // nothing measured: the minimum
  w.started(1, coqa(0), 0);
  w.finished(1, 12);
  w.started(1, coqa(1), 0);
  w.finished(1, 9);
  EXPECT_EQ(w.deadline(UnitKind::coqa), 48);
  EXPECT_EQ(w.deadline(UnitKind::bench), 30);  // kinds are measured apart
}

TEST(RankWatch, UnitPastItsDeadlineLosesItsRankThoughHeartbeatsGoOn) {
  RankWatch w(options());
  w.started(1, coqa(0), 0);
  w.finished(1, 12);
  w.started(3, coqa(1), 100);
  for (double t = 100; t <= 148; t += 5) w.heard(3, t);
  EXPECT_FALSE(w.lost(148));
  w.heard(3, 149);
  const auto lost = w.lost(149);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->first, 3);
  EXPECT_EQ(lost->second, "fp32/coqa/0001 has run 49 s, past its deadline of 48 s");
}

}  // namespace
