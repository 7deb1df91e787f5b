#pragma once
// The one HDF5 results store of a sweep (layout: docs/results-schema.md). Rank 0 is its only
// writer: it keeps every result in memory, and after each finished unit rewrites the whole file
// into FILE.tmp and renames it over FILE. A job killed at any moment leaves the last complete
// file, losing at most the units in flight, and a rerun resumes from it. An flock() on FILE.lock,
// held for the writer's lifetime, refuses a second writer.
#include "qsweep/store/timing.h"
#include "qsweep/util/results.h"
#include "qsweep/util/results_fields.h"
#include "qsweep/sweep/sweep_spec.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qsweep {

enum class UnitStatus { todo, done, failed };
std::string unit_status_name(UnitStatus status);

// One planned unit and how it last ended.
struct UnitRecord {
  std::string key;
  std::string config;
  UnitKind kind = UnitKind::coqa;
  UnitStatus status = UnitStatus::todo;
  int rank = -1;
  std::string host;
  double seconds = 0;
  std::string finished_at;         // ISO 8601 UTC
};

struct ConfigResults {
  std::string name;
  std::string fingerprint;         // config_fingerprint() of the config that produced these
  // Keyed by unit so shards sort in file order and a unit's samples stay together.
  std::map<std::string, std::vector<SampleRecord>> samples;
  std::optional<BenchRecord> bench;
  std::vector<SanityOutput> sanity;
  std::optional<double> perplexity;
  std::optional<double> kl_vs_baseline;   // nats per token, KL(baseline || config)
  std::string kl_baseline;                // the baseline when the sanity unit ran ("" in older
                                          // stores): a unit run against another is redone
  std::vector<PrepareRecord> preparations;  // every time a rank prepared this config's model
  std::optional<ConfigMetrics> metrics;
  std::string metrics_from;   // the settings the metrics were derived with (metrics_settings())
};

struct Results {
  std::map<std::string, std::string> provenance;
  std::vector<ConfigResults> configs;      // in spec order
  std::vector<UnitRecord> units;           // in plan order
  std::vector<UnitError> errors;           // every failure, also of units later redone
  std::vector<TimingSegment> timing;       // one per run of the sweep, oldest first
};

// The field lists of the store's own records (see qsweep/util/results_fields.h). /units is
// written and read from UnitRecord's; ConfigResults and Results are groups of the layout rather
// than tables, and their lists serve comparisons of whole stores (tests/record_diff.h).
template <>
struct Fields<UnitRecord> {
  static constexpr auto list = std::tuple{
      Field{"key", &UnitRecord::key},
      Field{"config", &UnitRecord::config},
      Field{"kind", &UnitRecord::kind},
      Field{"status", &UnitRecord::status},
      Field{"rank", &UnitRecord::rank},
      Field{"host", &UnitRecord::host},
      Field{"seconds", &UnitRecord::seconds},
      Field{"finished_at", &UnitRecord::finished_at},
  };
};

template <>
struct Fields<ConfigResults> {
  static constexpr auto list = std::tuple{
      Field{"name", &ConfigResults::name},
      Field{"fingerprint", &ConfigResults::fingerprint},
      Field{"samples", &ConfigResults::samples},
      Field{"bench", &ConfigResults::bench},
      Field{"sanity", &ConfigResults::sanity},
      Field{"perplexity", &ConfigResults::perplexity},
      Field{"kl_vs_baseline", &ConfigResults::kl_vs_baseline},
      Field{"kl_baseline", &ConfigResults::kl_baseline},
      Field{"preparations", &ConfigResults::preparations},
      Field{"metrics", &ConfigResults::metrics},
      Field{"metrics_from", &ConfigResults::metrics_from},
  };
};

template <>
struct Fields<Results> {
  static constexpr auto list = std::tuple{
      Field{"provenance", &Results::provenance},
      Field{"configs", &Results::configs},
      Field{"units", &Results::units},
      Field{"errors", &Results::errors},
      Field{"timing", &Results::timing},
  };
};

ConfigResults* find_config(Results& results, const std::string& name);
const ConfigResults* find_config(const Results& results, const std::string& name);
std::vector<SampleRecord> all_samples(const ConfigResults& config);

// The file as it is on disk; no lock is taken (readers never need one).
Results read_store(const std::string& path);
// Writes FILE.tmp, fsyncs it and renames it over FILE.
void write_store(const std::string& path, const Results& results);

// Held for the writer's lifetime; the kernel drops it when the process dies, however it dies.
class StoreLock {
 public:
  // Throws Error naming the lock file and the PID and host that hold it.
  explicit StoreLock(const std::string& store_path);
  StoreLock(StoreLock&& other) noexcept;
  StoreLock& operator=(StoreLock&& other) noexcept;
  StoreLock(const StoreLock&) = delete;
  ~StoreLock();

 private:
  int fd_ = -1;
};

struct Store {
  std::string path;
  Results results;
  StoreLock lock;
};

// Locks PATH, then resumes the store found there or starts a new one, and saves it with every
// planned unit listed. PATH is resolved first (symlinks, ".."): the Store's path, its lock and
// every save are those of the real file, and a store with a second hard link is refused, so no
// two names of one store can be written by two sweeps. Refuses a store made by a sweep whose results mean something else
// (resume_incompatibility), naming the setting that changed.
Store open_store_for_writing(const std::string& path, const SweepSpec& spec,
                             const std::vector<WorkUnit>& planned);
// "" when `stored` can be resumed by `spec`, otherwise why not. `fingerprint` is
// results_fingerprint(spec), passed in because it hashes the data files.
std::string resume_incompatibility(const Results& stored, const SweepSpec& spec,
                                   const std::string& fingerprint);

// The planned units still to run: those never finished and, with retry_failed, those whose last
// run failed. Failures are not retried by default: most (out of memory, a broken config) fail
// again the same way.
std::vector<WorkUnit> pending_units(const Store& store, const std::vector<WorkUnit>& planned,
                                    bool retry_failed = false);

// Who ran a unit. The add_* functions change memory only: call save_store after each unit.
struct UnitRun {
  std::string key;
  int rank = 0;
  std::string host;
  double seconds = 0;
};
void add_samples(Store& store, const UnitRun& run, std::vector<SampleRecord> samples);
void add_bench(Store& store, const UnitRun& run, BenchRecord bench);
// `baseline` is the sweep's baseline the KL was computed against.
void add_sanity(Store& store, const UnitRun& run, std::vector<SanityOutput> outputs,
                std::optional<double> perplexity, std::optional<double> kl_vs_baseline,
                const std::string& baseline);
// A prepare unit (the computation of a calibrated config's cached checkpoint) that succeeded.
void add_prepared(Store& store, const UnitRun& run);
// Any unit during which its rank prepared the config's model; `config` is the unit's.
void add_preparation(Store& store, const std::string& config, PrepareRecord record);
void add_unit_error(Store& store, const UnitRun& run, const std::string& message);
// `from` says which settings they were derived with (kept as /configs/<name>/metrics@derived_from).
void set_metrics(Store& store, ConfigMetrics metrics, const std::string& from);
void set_provenance(Store& store, const std::string& key, const std::string& value);
// The timing of this run, stamped with its provenance started_at and the time now: appended,
// never replacing an earlier run's.
void add_timing_segment(Store& store, TimingSegment segment);
void save_store(Store& store);

// One line of the configs x metrics table that `show` prints and /summary holds.
struct SummaryRow {
  std::string config;
  size_t samples = 0;
  std::optional<ConfigMetrics> metrics;
  std::optional<SampleStats> prefill_ms;
  std::optional<SampleStats> decode_ms_per_token;
  int64_t model_bytes = -1;        // -1: not benchmarked
  std::optional<double> bits_per_weight;  // of the projections; none in older stores
  std::optional<double> perplexity, kl_vs_baseline;
  size_t units_done = 0, units_failed = 0, units_todo = 0;
};
std::vector<SummaryRow> summarize(const Results& results);
// The summary table as `qsweep show --format` prints it: text fits 120 columns (config names cut
// to 14 characters) unless `wide`; md is the wide table in Markdown; csv and json hold the raw
// values (one object or line per config, null or empty where a value is missing).
enum class TableFormat { text, markdown, csv, json };
std::optional<TableFormat> parse_table_format(std::string_view name);  // text, md, csv, json
std::string format_summary_table(const Results& results, TableFormat format, bool wide);
// The report `show` prints: header, summary table, errors, units not done.
std::string format_store_report(const std::string& path, const Results& results,
                                bool wide = false);


}  // namespace qsweep
