#pragma once
// The benchmark unit: what the prototype measured (size, peak memory, prefill, decode ms/token,
// throughput by batch size, power, bandwidth), with warmup, repeats and raw samples kept.
#include "qsweep/util/results.h"

#include <string>
#include <vector>

namespace qsweep {

struct Model;

struct BenchOptions {
  int prefill_tokens = 512;        // prompt length for the prefill latency, batch 1
  int decode_tokens = 128;         // tokens decoded for ms/token and throughput
  int throughput_prompt_tokens = 128;
  std::vector<int> batch_sizes = {1, 4, 8};
  int warmup = 2;
  int repeats = 5;
  uint64_t seed = 0;               // the random token ids fed to the model
};

BenchRecord run_benchmark(const Model& model, const std::string& config, const BenchOptions& options);

}  // namespace qsweep
