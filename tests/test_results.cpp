// The result records' JSON forms (how workers send units to rank 0) and the field-by-field
// comparison the tests use, both walked from the field lists in results_fields.h.
#include "qsweep/util/results_json.h"
#include "record_diff.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace qsweep;
using nlohmann::json;
using qsweep::testing::record_diff;

namespace {

SampleRecord sample() {
  SampleRecord s;
  s.id = "3dr23u6we5exclen4th8uq9rb42tel";
  s.turn = 12;
  s.source = "mctest";
  s.prompt_sha256 = std::string(64, 'a');
  s.prediction = "white";
  s.golds = {"white", "a white kitten"};
  s.em = 1;
  s.f1 = 1;
  s.prompt_tokens = 300;
  s.generated_tokens = 3;
  s.stop_reason = "stop_string";
  return s;
}

UnitResult bench_unit() {
  BenchRecord b;
  b.config = "nf4";
  b.device = "cpu";
  b.device_kind = "cpu";
  b.method = "warmup 1, repeats 2";
  b.sync = "steady clock";
  b.warmup = 1;
  b.repeats = 2;
  b.prefill_tokens = 64;
  b.decode_tokens = 16;
  b.throughput_prompt_tokens = 32;
  b.model_bytes = 1024;
  b.peak_memory_bytes = 4096;
  b.bits_per_weight = 4.25;
  b.decode_bytes_per_step = 2048;
  b.prefill_flops = 1e9;
  b.prefill_ms = {1.5, 2.5};
  b.prefill_tflop_s = {0.5, 0.4};
  b.decode_ms_per_token = {0.25};
  b.throughput_tokens_per_s = {{1, {10}}, {4, {40, 41}}};
  b.bandwidth_gb_s = {0.008};
  b.copy_bytes = 65536;
  b.copy_bandwidth_gb_s = {0.5};
  b.matmul_size = 512;
  b.matmul_tflop_s = {0.25};
  b.decode_fraction_of_copy_bandwidth = 0.016;
  b.prefill_fraction_of_matmul_rate = 1.8;
  UnitResult u;
  u.key = "nf4/bench";
  u.config = "nf4";
  u.rank = 2;
  u.host = "node7";
  u.seconds = 3.5;
  u.bench = b;
  return u;
}

}  // namespace

// The wire format rank 0 and the workers agree on: every key always there, an absent optional as
// null, the throughput map keyed by batch size. A renamed field shows up here.
TEST(ResultsJson, UnitResultHasTheWireFormatsKeys) {
  const json expected = json::parse(R"({
    "key": "nf4/bench", "config": "nf4", "rank": 2, "host": "node7", "seconds": 3.5,
    "samples": [], "sanity": [], "perplexity": null, "kl_vs_baseline": null, "prepare": null,
    "error": null,
    "bench": {"config": "nf4", "device": "cpu", "device_kind": "cpu",
              "method": "warmup 1, repeats 2", "sync": "steady clock", "warmup": 1,
              "repeats": 2, "prefill_tokens": 64, "decode_tokens": 16,
              "throughput_prompt_tokens": 32,
              "model_bytes": 1024, "peak_memory_bytes": 4096, "bits_per_weight": 4.25,
              "decode_bytes_per_step": 2048.0, "prefill_flops": 1e9,
              "prefill_ms": [1.5, 2.5], "prefill_tflop_s": [0.5, 0.4],
              "decode_ms_per_token": [0.25],
              "throughput_tokens_per_s": {"1": [10.0], "4": [40.0, 41.0]},
              "power_w": [], "energy_j_per_token": [], "bandwidth_gb_s": [0.008],
              "copy_bytes": 65536, "copy_bandwidth_gb_s": [0.5],
              "matmul_size": 512, "matmul_tflop_s": [0.25],
              "decode_fraction_of_copy_bandwidth": 0.016,
              "prefill_fraction_of_matmul_rate": 1.8}})");
  EXPECT_EQ(json(bench_unit()), expected) << json(bench_unit()).dump(2);
}

TEST(ResultsJson, UnitResultRoundTripsEveryField) {
  UnitResult u = bench_unit();
  u.samples = {sample(), sample()};
  u.samples[1].golds = {};
  u.sanity = {{"The capital of France is", " Paris"}};
  u.perplexity = 12.5;
  u.kl_vs_baseline = 0.0;
  u.prepare = PrepareRecord{"nf4/bench", 2, "node7", "cache", 1.25, 0.0, "/scratch/qsweep_cache/gptq-0123"};
  u.error = UnitError{"nf4", "nf4/bench", 2, "node7", "CUDA out of memory"};
  const UnitResult back = json::parse(json(u).dump()).get<UnitResult>();
  EXPECT_EQ(record_diff(back, u), "");
}

TEST(ResultsJson, MissingFieldIsNamed) {
  json j = bench_unit();
  j["bench"].erase("peak_memory_bytes");
  try {
    j.get<UnitResult>();
    FAIL() << "read a bench record without peak_memory_bytes";
  } catch (const json::exception& e) {
    EXPECT_NE(std::string(e.what()).find("'peak_memory_bytes'"), std::string::npos) << e.what();
  }
}

TEST(RecordDiff, NamesTheFirstFieldThatDiffers) {
  UnitResult a = bench_unit(), b = bench_unit();
  a.samples = b.samples = {sample(), sample()};
  EXPECT_EQ(record_diff(a, b), "");
  b.samples[1].f1 = 0.4;
  EXPECT_EQ(record_diff(a, b), "samples[1].f1: 1 != 0.4");
  b = a;
  b.bench->throughput_tokens_per_s[4].push_back(42);
  EXPECT_EQ(record_diff(a, b), "bench.throughput_tokens_per_s[4]: 2 != 3 items");
  b = a;
  b.error = UnitError{};
  EXPECT_EQ(record_diff(a, b), "error: unset != set");
}

TEST(RecordDiff, MetricsPathsAreTheStoresAttributeNames) {
  ConfigMetrics a, b;
  b.f1.bca95.lo = 0.5;
  EXPECT_EQ(record_diff(a, b), "f1_bca95_lo: 0 != 0.5");
}

TEST(RecordDiff, NanEqualsNan) {
  SampleRecord a = sample(), b = sample();
  a.f1 = b.f1 = std::nan("");
  EXPECT_EQ(record_diff(a, b), "");
}
