// The benchmark's figures: the bytes a decode step reads and the FLOPs of a prefill counted by
// hand on the tiny shape, the energy of a timed interval from power samples, and the benchmark
// unit and `qsweep bench` on the CPU (what is recorded, not how fast: no timing assertions).
#include "qsweep/bench/bench.h"
#include "qsweep/bench/device_limits.h"
#include "qsweep/bench/power.h"
#include "qsweep/bench/work_counts.h"
#include "qsweep/eval/stats.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/util/text.h"
#include "test_helpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>

using namespace qsweep;

namespace {

// The tiny preset: hidden 64, intermediate 192, 2 layers, 4 heads, 2 KV heads of 16, tied
// embeddings; a 256-token vocabulary.
const std::string& tiny_model_dir() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("bench-model");
    write_random_model(model_preset("tiny", 256), RandomInit{3}, d);
    return d;
  }();
  return dir;
}

const Model& tiny_model(DType dtype) {
  static const Model fp32 = load_model(tiny_model_dir(), {DType::fp32, at::kCPU});
  static const Model bf16 = load_model(tiny_model_dir(), {DType::bf16, at::kCPU});
  return dtype == DType::fp32 ? fp32 : bf16;
}

// Per layer q 64x64, k and v 32x64, o 64x64, gate and up 192x64, down 64x192: 49,152 weights;
// two layers, 5 norms of 64, and the tied lm_head 256x64.
constexpr double kStepElements = 2 * 49152 + 5 * 64 + 256 * 64;  // 115,008
constexpr double kKvElementsPerSlot = 2 * 2 * 2 * 16;            // k and v, layers, kv heads

TEST(WorkCounts, DecodeStepReadsWeightsNormsLmHeadGatheredRowsAndTheCacheAtItsLength) {
  // Not the embedding table a second time: only the batch's rows of it are gathered.
  EXPECT_DOUBLE_EQ(decode_step_bytes(tiny_model(DType::fp32), 1, 10),
                   4 * (kStepElements + 64 + 10 * kKvElementsPerSlot));
  EXPECT_DOUBLE_EQ(decode_step_bytes(tiny_model(DType::fp32), 3, 7),
                   4 * (kStepElements + 3 * 64 + 3 * 7 * kKvElementsPerSlot));
  EXPECT_DOUBLE_EQ(decode_step_bytes(tiny_model(DType::bf16), 1, 10),
                   2 * (kStepElements + 64 + 10 * kKvElementsPerSlot));
}

TEST(WorkCounts, DecodeBytesCountEachStepAtItsOwnLength) {
  const Model& m = tiny_model(DType::fp32);
  // After 5 filled slots, three steps attend over 6, 7 and 8.
  EXPECT_DOUBLE_EQ(decode_bytes(m, 2, 5, 3),
                   decode_step_bytes(m, 2, 6) + decode_step_bytes(m, 2, 7) +
                       decode_step_bytes(m, 2, 8));
}

TEST(WorkCounts, PrefillFlopsAreProjectionsLmHeadOfTheLastTokenAndCausalAttention) {
  // 2 x 98,304 x 8 + 2 x 16,384 + 4 x 2 layers x 4 heads x 16 x (8 x 9 / 2) pairs.
  EXPECT_DOUBLE_EQ(prefill_flops(tiny_model(DType::fp32), 1, 8), 1572864.0 + 32768 + 18432);
  EXPECT_DOUBLE_EQ(prefill_flops(tiny_model(DType::fp32), 2, 8), 2 * (1572864.0 + 32768 + 18432));
}

TEST(Energy, IntegratesTheSampledPowerOverTheTimedIntervalOnly) {
  const std::vector<PowerSample> s = {{10, 100}, {11, 200}, {12, 100}};
  EXPECT_DOUBLE_EQ(*energy_joules(s, 10, 12), 300);
  // Between samples the power is interpolated: 150 W at 10.5 and 11.5.
  EXPECT_DOUBLE_EQ(*energy_joules(s, 10.5, 11.5), 175);
  // Outside the samples it is held at the nearest one.
  EXPECT_DOUBLE_EQ(*energy_joules(s, 13, 15), 200);
  EXPECT_DOUBLE_EQ(*energy_joules(s, 9, 10), 100);
  EXPECT_FALSE(energy_joules({}, 10, 12).has_value());
  EXPECT_FALSE(energy_joules(s, 12, 12).has_value());
  EXPECT_EQ(watts_within(s, 10.5, 12), (std::vector<double>{200, 100}));
}

TEST(DeviceLimits, CpuMeasuresSmallerYardsticksOneSamplePerRepeat) {
  const DeviceLimitSizes sizes = device_limit_sizes(at::kCPU);
  EXPECT_EQ(sizes.copy_bytes, 64 << 20);
  EXPECT_EQ(sizes.matmul_size, 512);
  const std::vector<double> copy = copy_bandwidth_gb_s(at::kCPU, 1 << 20, 1, 3);
  const std::vector<double> matmul = matmul_tflop_s(at::kCPU, at::kFloat, 64, 0, 2);
  ASSERT_EQ(copy.size(), 3u);
  ASSERT_EQ(matmul.size(), 2u);
  for (double v : copy) EXPECT_GT(v, 0);
  for (double v : matmul) EXPECT_GT(v, 0);
  int runs = 0;
  EXPECT_EQ(repeat_timed(2, 3, [&] { return static_cast<double>(++runs); }),
            (std::vector<double>{3, 4, 5}));  // the warmup runs' results are dropped
}

BenchOptions small_options() {
  BenchOptions o;
  o.prefill_tokens = 8;
  o.decode_tokens = 4;
  o.throughput_prompt_tokens = 6;
  o.batch_sizes = {1, 2};
  o.warmup = 1;
  o.repeats = 2;
  return o;
}

TEST(Benchmark, CpuRecordSaysHowItWasMeasuredAndCarriesItsRatios) {
  const Model& m = tiny_model(DType::fp32);
  const BenchRecord r = run_benchmark(m, "fp32", small_options());
  EXPECT_EQ(r.device_kind, "cpu");
  EXPECT_EQ(r.warmup, 1);
  EXPECT_EQ(r.repeats, 2);
  EXPECT_EQ(r.prefill_tokens, 8);
  EXPECT_EQ(r.decode_tokens, 4);
  EXPECT_EQ(r.throughput_prompt_tokens, 6);
  EXPECT_NE(r.sync.find("steady clock"), std::string::npos) << r.sync;
  EXPECT_NE(r.method.find("6-token prompt"), std::string::npos) << r.method;
  EXPECT_EQ(r.copy_bytes, 64 << 20);
  EXPECT_EQ(r.matmul_size, 512);
  for (const auto* samples : {&r.prefill_ms, &r.prefill_tflop_s, &r.decode_ms_per_token,
                              &r.bandwidth_gb_s, &r.copy_bandwidth_gb_s, &r.matmul_tflop_s})
    EXPECT_EQ(samples->size(), 2u);
  ASSERT_EQ(r.throughput_tokens_per_s.size(), 2u);
  EXPECT_EQ(r.throughput_tokens_per_s.at(2).size(), 2u);
  EXPECT_TRUE(r.power_w.empty());  // no NVML on a CPU
  EXPECT_TRUE(r.energy_j_per_token.empty());

  // A 1-token prompt, then 4 steps over 2, 3, 4 and 5 slots.
  const double bytes = decode_bytes(m, 1, 1, 4);
  EXPECT_DOUBLE_EQ(r.decode_bytes_per_step, bytes / 4);
  EXPECT_DOUBLE_EQ(r.prefill_flops, prefill_flops(m, 1, 8));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_DOUBLE_EQ(r.bandwidth_gb_s[i], bytes / (r.decode_ms_per_token[i] * 4 * 1e6));
    EXPECT_DOUBLE_EQ(r.prefill_tflop_s[i], r.prefill_flops / (r.prefill_ms[i] * 1e9));
  }
  EXPECT_DOUBLE_EQ(r.decode_fraction_of_copy_bandwidth,
                   sample_stats(r.bandwidth_gb_s).median / sample_stats(r.copy_bandwidth_gb_s).median);
  EXPECT_DOUBLE_EQ(r.prefill_fraction_of_matmul_rate,
                   sample_stats(r.prefill_tflop_s).median / sample_stats(r.matmul_tflop_s).median);
}

TEST(Benchmark, QsweepBenchWritesTheRecordItsStatisticsAndRatiosAsJson) {
  const std::string out = make_temp_dir("bench-cli") + "/bench.json";
  const std::string command = QSWEEP_BINARY_DIR "/qsweep bench --model " + tiny_model_dir() +
                              " --dtype fp32 --device cpu --prefill-tokens 8 --decode-tokens 4 "
                              "--throughput-prompt-tokens 6 --batch-sizes 1 3 --warmup 0 "
                              "--repeats 2 --out " + out;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const nlohmann::json j = nlohmann::json::parse(read_file(out));
  EXPECT_EQ(j.at("device_kind"), "cpu");
  EXPECT_EQ(j.at("throughput_prompt_tokens"), 6);
  EXPECT_EQ(j.at("warmup"), 0);
  EXPECT_EQ(j.at("repeats"), 2);
  EXPECT_EQ(j.at("throughput_tokens_per_s").size(), 2u);
  EXPECT_GT(j.at("decode_fraction_of_copy_bandwidth").get<double>(), 0);
  EXPECT_GT(j.at("prefill_fraction_of_matmul_rate").get<double>(), 0);
  for (const char* name : {"prefill_ms", "prefill_tflop_s", "decode_ms_per_token",
                           "bandwidth_gb_s", "copy_bandwidth_gb_s", "matmul_tflop_s",
                           "energy_j_per_token", "throughput_b3"})
    EXPECT_TRUE(j.at("stats").contains(name)) << name;
  EXPECT_EQ(j.at("stats").at("copy_bandwidth_gb_s").at("n"), 2);
}

}  // namespace
