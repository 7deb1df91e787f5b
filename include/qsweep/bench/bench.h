#pragma once
// The benchmark unit: what the prototype measured (size, peak memory, prefill, decode ms/token,
// throughput by batch size, power, bandwidth), with warmup, repeats and raw samples kept, and
// the device's copy bandwidth and matmul rate measured in the same run as the yardsticks.
#include "qsweep/util/results.h"

#include <string>
#include <vector>

namespace qsweep {

struct Model;

struct BenchOptions {
  int prefill_tokens = 512;        // prompt length for the prefill latency, batch 1
  int decode_tokens = 128;         // timed decode steps for ms/token and throughput
  int throughput_prompt_tokens = 128;  // prompt length of the throughput runs
  std::vector<int> batch_sizes = {1, 4, 8, 16};
  int warmup = 2;
  int repeats = 5;
  uint64_t seed = 0;               // the random token ids fed to the model
};

BenchRecord run_benchmark(const Model& model, const std::string& config, const BenchOptions& options);

}  // namespace qsweep
