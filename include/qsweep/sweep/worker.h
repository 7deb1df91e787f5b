#pragma once
// What one rank does with the units it is handed: prepare a config's model once and keep it
// while that config's units keep coming, run each unit, and turn any exception into an error
// result. Free of libtorch types so the coordinator does not compile against them.
#include "qsweep/util/results.h"
#include "qsweep/sweep/sweep_spec.h"

#include <memory>
#include <string>

namespace qsweep {

struct RankInfo {
  int rank = 0;
  int local_rank = 0;
  int local_size = 1;   // ranks on this node
  std::string host;
};

class UnitRunner {
 public:
  UnitRunner(const SweepSpec& spec, const RankInfo& rank);
  ~UnitRunner();
  UnitRunner(const UnitRunner&) = delete;
  UnitRunner& operator=(const UnitRunner&) = delete;

  // Never throws: a failure comes back as a result with `error` set.
  UnitResult run(const WorkUnit& unit);
  // The config whose model this rank holds prepared ("" for none).
  const std::string& prepared_config() const;
  // The device this rank computes on, as recorded in provenance.
  std::string device() const;
  // After a CUDA error the GPU context is unusable: this rank must leave the sweep.
  bool broken() const;

  struct State;  // model, tokenizer and samples of this rank; opaque outside worker.cpp

 private:
  std::unique_ptr<State> state_;
};

}  // namespace qsweep
