// The worker <-> rank 0 messages survive their wire form field for field, invalid UTF-8 in
// generated text included.
#include "qsweep/sweep/protocol.h"

#include <gtest/gtest.h>

using namespace qsweep;

TEST(Protocol, ReportWithEveryKindOfResultRoundTrips) {
  UnitResult r;
  r.key = "fp16/coqa/0003";
  r.config = "fp16";
  r.rank = 2;
  r.host = "node7";
  r.seconds = 12.5;
  r.samples.push_back({"id1", 3, "cnn", "ab12", "the cat", " the cat\n", {"a cat", "cat"}, 0, 0.8, 400, 3, "stop_string"});
  BenchRecord b;
  b.config = "fp16";
  b.device = "cpu";
  b.prefill_ms = {1.5, 2.5};
  b.throughput_tokens_per_s = {{1, {10.0}}, {4, {35.0, 36.0}}};
  r.bench = b;
  r.sanity.push_back({"Hello", "world"});
  r.perplexity = 12.25;
  r.kl_vs_baseline = 0.125;
  const WorkerReport sent{r, "fp16", false, "node7 cpu (cpu)", "", 0, 1.25};
  const WorkerReport got = decode_report(encode_report(sent));
  ASSERT_TRUE(got.result.has_value());
  EXPECT_EQ(got.held, "fp16");
  EXPECT_EQ(got.device, "node7 cpu (cpu)");
  EXPECT_FALSE(got.leaving);
  EXPECT_DOUBLE_EQ(got.waited_seconds, 1.25);
  EXPECT_EQ(got.result->key, r.key);
  EXPECT_EQ(got.result->rank, 2);
  EXPECT_DOUBLE_EQ(got.result->seconds, 12.5);
  ASSERT_EQ(got.result->samples.size(), 1u);
  EXPECT_EQ(got.result->samples[0].generation, r.samples[0].generation);
  EXPECT_EQ(got.result->samples[0].golds, r.samples[0].golds);
  EXPECT_DOUBLE_EQ(got.result->samples[0].f1, 0.8);
  ASSERT_TRUE(got.result->bench.has_value());
  EXPECT_EQ(got.result->bench->throughput_tokens_per_s, b.throughput_tokens_per_s);
  EXPECT_EQ(got.result->sanity[0].output, "world");
  EXPECT_DOUBLE_EQ(*got.result->kl_vs_baseline, 0.125);
}

TEST(Protocol, FirstRequestAndFailedStartRoundTrip) {
  const WorkerReport got =
      decode_report(encode_report({std::nullopt, "", true, "", "no GPU", 3.5, 0}));
  EXPECT_FALSE(got.result.has_value());
  EXPECT_DOUBLE_EQ(got.startup_seconds, 3.5);
  EXPECT_TRUE(got.leaving);
  EXPECT_EQ(got.failure, "no GPU");
}

TEST(Protocol, InvalidUtf8InAPredictionIsReplacedNotFatal) {
  UnitResult r;
  r.key = "a/coqa/0000";
  r.samples.push_back({});
  r.samples[0].prediction = "ok \xff\xfe end";
  const WorkerReport got = decode_report(encode_report({r, "a", false, "", ""}));
  EXPECT_EQ(got.result->samples[0].prediction, "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
}

TEST(Protocol, AssignmentCarriesAUnitOrStop) {
  const WorkUnit unit{"bf16/coqa/0002", "bf16", UnitKind::coqa, 2, 100, 150};
  const Assignment got = decode_assignment(encode_assignment({unit}));
  ASSERT_TRUE(got.unit.has_value());
  EXPECT_EQ(got.unit->key, unit.key);
  EXPECT_EQ(got.unit->kind, UnitKind::coqa);
  EXPECT_EQ(got.unit->begin, 100u);
  EXPECT_EQ(got.unit->end, 150u);
  EXPECT_FALSE(decode_assignment(encode_assignment({})).unit.has_value());
}

TEST(Protocol, UnknownUnitKindIsAnError) {
  EXPECT_THROW(decode_assignment(R"({"unit": {"key": "x", "config": "x", "kind": "train",
                                   "shard": 0, "begin": 0, "end": 1}})"),
               std::exception);
}
