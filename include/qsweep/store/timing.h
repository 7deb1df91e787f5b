#pragma once
// Where a sweep's time went, one segment per `qsweep run` (a resumed sweep appends one): wall
// time, each rank's busy time by unit kind and its idle time, rank 0's store writes, and how
// often each config's model was prepared on each rank. Kept in the store's /timing
// (docs/results-schema.md); analysis/scaling.py tabulates it across stores.
#include "qsweep/util/results_fields.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qsweep {

// One rank in one segment. startup + busy + wait + end_idle adds up to the segment's wall time,
// less message transit (each part is measured on its own: the first three by the rank, end_idle
// by rank 0).
struct RankTiming {
  int rank = 0;
  std::string host;
  int64_t units = 0;                  // units it finished in the segment
  double startup_seconds = 0;         // its worker's start (device, tokenizer, CoQA file)
  double busy_prepare_seconds = 0;    // inside prepare units (GPTQ/AWQ into the cache)
  double busy_sanity_seconds = 0;
  double busy_coqa_seconds = 0;
  double busy_bench_seconds = 0;
  double busy_seconds = 0;            // the four above
  double wait_seconds = 0;            // from sending a result to receiving its next unit
  double end_idle_seconds = 0;        // from its last report (answered with stop) to the end
  int64_t preparations = 0;           // models it loaded (and quantized) for a config: inside busy
  double load_seconds = 0;            // their loading, inside busy
  double quantize_seconds = 0;        // their quantizing, inside busy
};

// How often one rank prepared one config's model in a segment. More than once on a rank means
// the model was reloaded; a calibrated config quantized on two ranks means computed twice.
struct PreparationCount {
  std::string config;
  int rank = 0;
  int64_t count = 0;
  int64_t quantized = 0;              // of those, quantized there (source "quantized")
  double load_seconds = 0;
  double quantize_seconds = 0;
};

struct TimingSegment {
  std::string started_at;             // ISO 8601 UTC: the run's provenance started_at
  std::string finished_at;            // when the segment was added, at the run's end
  std::string ended;                  // "finished", or "stopped by SIGTERM" / "stopped by SIGUSR1"
  int64_t ranks = 0;
  int64_t units = 0;                  // units finished in the segment, failed ones included
  double wall_seconds = 0;            // rank 0, from the first hand-out to the last rank leaving
  double busy_seconds = 0;            // summed over the ranks
  double efficiency = 0;              // busy_seconds / (ranks x wall_seconds)
  int64_t store_writes = 0;
  double store_write_seconds = 0;     // rank 0 rewriting the store file
  double record_seconds = 0;          // rank 0 recording results: metrics, store writes, progress
  std::vector<RankTiming> rank_times;
  std::vector<PreparationCount> preparations;
};

template <>
struct Fields<RankTiming> {
  static constexpr auto list = std::tuple{
      Field{"rank", &RankTiming::rank},
      Field{"host", &RankTiming::host},
      Field{"units", &RankTiming::units},
      Field{"startup_seconds", &RankTiming::startup_seconds},
      Field{"busy_prepare_seconds", &RankTiming::busy_prepare_seconds},
      Field{"busy_sanity_seconds", &RankTiming::busy_sanity_seconds},
      Field{"busy_coqa_seconds", &RankTiming::busy_coqa_seconds},
      Field{"busy_bench_seconds", &RankTiming::busy_bench_seconds},
      Field{"busy_seconds", &RankTiming::busy_seconds},
      Field{"wait_seconds", &RankTiming::wait_seconds},
      Field{"end_idle_seconds", &RankTiming::end_idle_seconds},
      Field{"preparations", &RankTiming::preparations},
      Field{"load_seconds", &RankTiming::load_seconds},
      Field{"quantize_seconds", &RankTiming::quantize_seconds},
  };
};

template <>
struct Fields<PreparationCount> {
  static constexpr auto list = std::tuple{
      Field{"config", &PreparationCount::config},
      Field{"rank", &PreparationCount::rank},
      Field{"count", &PreparationCount::count},
      Field{"quantized", &PreparationCount::quantized},
      Field{"load_seconds", &PreparationCount::load_seconds},
      Field{"quantize_seconds", &PreparationCount::quantize_seconds},
  };
};

template <>
struct Fields<TimingSegment> {
  static constexpr auto list = std::tuple{
      Field{"started_at", &TimingSegment::started_at},
      Field{"finished_at", &TimingSegment::finished_at},
      Field{"ended", &TimingSegment::ended},
      Field{"ranks", &TimingSegment::ranks},
      Field{"units", &TimingSegment::units},
      Field{"wall_seconds", &TimingSegment::wall_seconds},
      Field{"busy_seconds", &TimingSegment::busy_seconds},
      Field{"efficiency", &TimingSegment::efficiency},
      Field{"store_writes", &TimingSegment::store_writes},
      Field{"store_write_seconds", &TimingSegment::store_write_seconds},
      Field{"record_seconds", &TimingSegment::record_seconds},
      Field{"rank_times", &TimingSegment::rank_times},
      Field{"preparations", &TimingSegment::preparations},
  };
};

}  // namespace qsweep
