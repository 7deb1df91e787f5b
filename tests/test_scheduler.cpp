// The scheduler on its own: model affinity, spreading configs over ranks, a unit going back
// when its rank leaves or breaks under it, and the limit on attempts.
#include "qsweep/sweep/scheduler.h"

#include <gtest/gtest.h>

#include <set>

using namespace qsweep;

namespace {

std::vector<WorkUnit> units(const std::vector<std::string>& configs, int per_config) {
  std::vector<WorkUnit> out;
  for (const auto& c : configs)
    for (int i = 0; i < per_config; ++i)
      out.push_back({c + "/coqa/" + std::to_string(i), c, UnitKind::coqa, i, size_t(i), size_t(i + 1)});
  return out;
}

// `gated`'s unit of kind `gate` (its GPTQ prepare or its sanity check), then its two CoQA units,
// then one CoQA unit of `other`.
std::vector<WorkUnit> gated_plan(const std::string& gated, UnitKind gate, const std::string& other) {
  std::vector<WorkUnit> planned = units({gated}, 2);
  const std::string key = gated + (gate == UnitKind::prepare ? "/prepare" : "/sanity");
  planned.insert(planned.begin(), {key, gated, gate, -1, 0, 0});
  for (const WorkUnit& u : units({other}, 1)) planned.push_back(u);
  return planned;
}

}  // namespace

TEST(Scheduler, RankKeepsTheConfigItHoldsPrepared) {
  Scheduler s(units({"a", "b"}, 3));
  EXPECT_EQ(s.next(0, "")->config, "a");
  s.finish(0);
  EXPECT_EQ(s.next(0, "a")->key, "a/coqa/1");
  s.finish(0);
  EXPECT_EQ(s.next(0, "a")->key, "a/coqa/2");
}

TEST(Scheduler, IdleRanksSpreadOverConfigsNoOtherRankHolds) {
  Scheduler s(units({"a", "b", "c"}, 2));
  std::set<std::string> first;
  for (int rank = 0; rank < 3; ++rank) first.insert(s.next(rank, "")->config);
  EXPECT_EQ(first, (std::set<std::string>{"a", "b", "c"}));
}

TEST(Scheduler, RanksShareAConfigOnlyWhenNothingElseIsLeft) {
  Scheduler s(units({"a"}, 2));
  EXPECT_EQ(s.next(0, "")->key, "a/coqa/0");
  EXPECT_EQ(s.next(1, "")->key, "a/coqa/1");
  EXPECT_FALSE(s.next(2, "").has_value());
}

TEST(Scheduler, UnitInFlightGoesBackWhenItsRankLeaves) {
  Scheduler s(units({"a", "b"}, 1));
  const WorkUnit lost = *s.next(0, "");
  s.leave(0);
  EXPECT_EQ(s.pending(), 2u);
  EXPECT_EQ(s.in_flight(), 0u);
  EXPECT_EQ(s.next(1, "")->key, lost.key);
}

TEST(Scheduler, UnitBrokenUnderItsRankIsRetriedElsewhereUpToTheLimit) {
  Scheduler s(units({"a"}, 1), /*max_attempts=*/2);
  EXPECT_EQ(s.next(0, "")->key, "a/coqa/0");
  EXPECT_TRUE(s.finish(0, /*requeue=*/true));
  EXPECT_EQ(s.next(1, "")->key, "a/coqa/0");
  EXPECT_FALSE(s.finish(1, /*requeue=*/true)) << "a second fault is the unit's: it is recorded";
  EXPECT_EQ(s.pending(), 0u);
}

TEST(Scheduler, FinishedUnitIsNotHandedOutAgain) {
  Scheduler s(units({"a"}, 2));
  s.next(0, "");
  EXPECT_FALSE(s.finish(0));
  s.leave(0);
  EXPECT_EQ(s.pending(), 1u);
}

// A rank given a unit of a config whose GPTQ/AWQ checkpoint another rank is computing would only
// wait for it: it gets other work first, and that config's units once the computation is done.
TEST(Scheduler, UnitsWaitingForAPrepareUnitInFlightComeLast) {
  Scheduler s(gated_plan("gptq", UnitKind::prepare, "fp16"));
  EXPECT_EQ(s.next(0, "")->key, "gptq/prepare");
  EXPECT_EQ(s.next(1, "")->key, "fp16/coqa/0");
  s.finish(1);
  EXPECT_EQ(s.next(1, "fp16")->key, "gptq/coqa/0");  // nothing else is left: it waits
  s.finish(0);
  s.finish(1);
  EXPECT_EQ(s.next(0, "gptq")->key, "gptq/coqa/1");
}

// While a config's sanity unit runs, its other units wait behind other configs' work, so a
// config that fails its sanity check has not yet spread over the ranks.
TEST(Scheduler, UnitsOfAConfigWhoseSanityUnitIsInFlightComeLast) {
  Scheduler s(gated_plan("a", UnitKind::sanity, "b"));
  EXPECT_EQ(s.next(0, "")->key, "a/sanity");
  EXPECT_EQ(s.next(1, "")->key, "b/coqa/0");
  s.finish(1);
  EXPECT_EQ(s.next(1, "b")->key, "a/coqa/0");  // nothing else is left
}

// After a config's sanity unit failed, its units not handed out leave the queue (the coordinator
// records them as skipped); units of other configs and one already in flight stay as they are.
TEST(Scheduler, ABenchmarkIsHandedOutBeforeItsConfigsShards) {
  std::vector<WorkUnit> planned;
  for (const std::string c : {"a", "b"}) {
    planned.push_back({c + "/sanity", c, UnitKind::sanity, -1, 0, 0});
    for (const WorkUnit& u : units({c}, 2)) planned.push_back(u);
    planned.push_back({c + "/bench", c, UnitKind::bench, -1, 0, 0});
  }
  Scheduler s(planned);
  std::vector<std::string> order;
  for (std::optional<WorkUnit> u = s.next(0, ""); u; u = s.next(0, u->config)) {
    order.push_back(u->key);
    s.finish(0);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a/sanity", "a/bench", "a/coqa/0", "a/coqa/1",
                                             "b/sanity", "b/bench", "b/coqa/0", "b/coqa/1"}));
}

TEST(Scheduler, DropConfigTakesOnlyThatConfigsQueuedUnits) {
  Scheduler s(units({"a", "b"}, 3));
  EXPECT_EQ(s.next(0, "")->key, "a/coqa/0");
  const std::vector<WorkUnit> dropped = s.drop_config("a");
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(dropped[0].key, "a/coqa/1");
  EXPECT_EQ(dropped[1].key, "a/coqa/2");
  EXPECT_EQ(s.pending(), 3u);
  EXPECT_EQ(s.in_flight(), 1u);
  EXPECT_EQ(s.next(1, "a")->config, "b");
  EXPECT_TRUE(s.drop_config("a").empty());
}
