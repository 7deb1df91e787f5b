// The writer's side of the results store: open or resume, record what units produce, save.
#include "qsweep/store/store.h"

#include "qsweep/util/error.h"
#include "qsweep_version.h"
#include "store_layout.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace qsweep {

std::string unit_status_name(UnitStatus status) {
  switch (status) {
    case UnitStatus::todo: return "todo";
    case UnitStatus::done: return "done";
    case UnitStatus::failed: return "failed";
  }
  return "?";
}

ConfigResults* find_config(Results& results, const std::string& name) {
  for (auto& c : results.configs)
    if (c.name == name) return &c;
  return nullptr;
}

const ConfigResults* find_config(const Results& results, const std::string& name) {
  for (const auto& c : results.configs)
    if (c.name == name) return &c;
  return nullptr;
}

std::vector<SampleRecord> all_samples(const ConfigResults& config) {
  std::vector<SampleRecord> out;
  for (const auto& [unit, samples] : config.samples)
    out.insert(out.end(), samples.begin(), samples.end());
  return out;
}

namespace {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::vector<std::pair<std::string, std::string>> fingerprint_lines(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find('=');
    lines.emplace_back(line.substr(0, eq), eq == std::string::npos ? "" : line.substr(eq + 1));
  }
  return lines;
}

// "evaluation.max_new_tokens was 16, now 32; ..." for every setting that differs and matters.
std::string differences(const std::string& before, const std::string& now,
                        const std::function<bool(const std::string&)>& matters) {
  const auto old_lines = fingerprint_lines(before);
  const auto new_lines = fingerprint_lines(now);
  std::map<std::string, std::string> old_map(old_lines.begin(), old_lines.end());
  std::vector<std::string> diffs;
  std::set<std::string> seen;
  for (const auto& [key, value] : new_lines) {
    seen.insert(key);
    const auto it = old_map.find(key);
    const std::string was = it == old_map.end() ? "absent" : it->second;
    if (was != value && matters(key)) diffs.push_back(fmt::format("{} was {}, now {}", key, was, value));
  }
  for (const auto& [key, value] : old_lines)
    if (!seen.count(key) && matters(key))
      diffs.push_back(fmt::format("{} was {}, now absent", key, value));
  return fmt::format("{}", fmt::join(diffs, "; "));
}

bool always(const std::string&) { return true; }

// A config's own checkpoint ("model[DIR].weights", ...) matters only while some config on it has
// a finished unit: replacing a broken checkpoint whose units all failed mixes nothing, and is how
// such a config is fixed before --retry-failed.
bool own_model_has_results(const Results& stored, const SweepSpec& spec, const std::string& key) {
  if (key.rfind("model[", 0) != 0) return true;
  const std::string dir = key.substr(6, key.rfind("].") - 6);
  for (const PrepConfig& c : spec.configs) {
    if (c.model != dir) continue;
    for (const UnitRecord& u : stored.units)
      if (u.config == c.name && u.status == UnitStatus::done) return true;
  }
  return false;
}

UnitRecord& unit_to_finish(Store& store, const UnitRun& run, std::optional<UnitKind> kind) {
  for (UnitRecord& u : store.results.units) {
    if (u.key != run.key) continue;
    if (kind && u.kind != *kind)
      fail("store '{}': unit '{}' is a {} unit, not {}", store.path, run.key,
           unit_kind_name(u.kind), unit_kind_name(*kind));
    if (u.status == UnitStatus::done)
      fail("store '{}': unit '{}' is already done", store.path, run.key);
    return u;
  }
  fail("store '{}': unit '{}' is not in the sweep's plan", store.path, run.key);
}

ConfigResults& config_of(Store& store, const UnitRecord& unit) {
  ConfigResults* c = find_config(store.results, unit.config);
  if (!c) fail("store '{}': unit '{}' names unknown config '{}'", store.path, unit.key, unit.config);
  return *c;
}

void finish(UnitRecord& unit, const UnitRun& run, UnitStatus status) {
  unit.status = status;
  unit.rank = run.rank;
  unit.host = run.host;
  unit.seconds = run.seconds;
  unit.finished_at = utc_now();
}

void record_spec(Results& r, const SweepSpec& spec, const std::string& fingerprint) {
  r.provenance["name"] = spec.name;
  r.provenance["spec_path"] = spec.path;
  r.provenance["spec_text"] = spec.text;
  r.provenance["spec_hash"] = spec.spec_hash;
  r.provenance["results_fingerprint"] = fingerprint;
  r.provenance["baseline"] = spec.baseline;
  r.provenance["model"] = spec.model;
  r.provenance["tokenizer"] = spec.tokenizer;
  r.provenance["coqa"] = spec.evaluation.coqa;
  r.provenance["qsweep_version"] = QSWEEP_VERSION " (" QSWEEP_GIT_HASH ")";
  r.provenance["updated_at"] = utc_now();
}

// A resumed sweep may add configs and units; what the store already holds stays.
void extend_plan(Results& r, const SweepSpec& spec, const std::vector<WorkUnit>& planned) {
  for (const PrepConfig& config : spec.configs) {
    if (find_config(r, config.name)) continue;
    ConfigResults fresh;
    fresh.name = config.name;
    fresh.fingerprint = config_fingerprint(config);
    r.configs.push_back(std::move(fresh));
  }
  std::set<std::string> known;
  for (const UnitRecord& u : r.units) known.insert(u.key);
  for (const WorkUnit& w : planned)
    if (!known.count(w.key)) r.units.push_back({w.key, w.config, w.kind, UnitStatus::todo, -1, "", 0, ""});
}

// Every name of one store must lead to one lock: the lock sits beside the real file (symlinks
// resolved, in a directory reached however), and saving renames over the real file, so a symlink
// to the store stays a symlink to it.
std::string real_store_path(const std::string& path) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (!ec) return real.string();
  const fs::path absolute = fs::absolute(path);
  const fs::path dir = fs::canonical(absolute.parent_path(), ec);
  return ec ? absolute.lexically_normal().string() : (dir / absolute.filename()).string();
}

// A hard link is a second name for the same file in any directory, so no lock file beside one
// name sees a writer through the other; and the first save would split them into two stores.
void refuse_hard_links(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || st.st_nlink <= 1) return;
  fail("store '{}' (device {}, inode {}) has {} hard links: another name of it could be written "
       "by a second sweep unseen by this one's lock; remove the other names (find -samefile) or "
       "copy the store",
       path, st.st_dev, st.st_ino, st.st_nlink);
}

}  // namespace

std::string resume_incompatibility(const Results& stored, const SweepSpec& spec,
                                   const std::string& fingerprint) {
  const auto it = stored.provenance.find("results_fingerprint");
  const std::string before = it == stored.provenance.end() ? "" : it->second;
  std::vector<std::string> reasons;
  const std::string sweep = differences(
      before, fingerprint, [&](const std::string& key) { return own_model_has_results(stored, spec, key); });
  if (!sweep.empty()) reasons.push_back(sweep);
  for (const PrepConfig& config : spec.configs) {
    const ConfigResults* c = find_config(stored, config.name);
    const std::string now = config_fingerprint(config);
    if (c && c->fingerprint != now)
      reasons.push_back(
          fmt::format("config '{}' {}", config.name, differences(c->fingerprint, now, always)));
  }
  return fmt::format("{}", fmt::join(reasons, "; "));
}

Store open_store_for_writing(const std::string& given_path, const SweepSpec& spec,
                             const std::vector<WorkUnit>& planned) {
  const fs::path parent = fs::absolute(given_path).parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) fail("cannot create the store's directory '{}': {}", parent.string(), ec.message());
  const std::string path = real_store_path(given_path);
  StoreLock lock(path);
  refuse_hard_links(path);
  const std::string fingerprint = results_fingerprint(spec);
  Results results;
  if (fs::exists(path)) {
    results = read_store(path);
    const std::string reason = resume_incompatibility(results, spec, fingerprint);
    if (!reason.empty())
      fail("store '{}' holds results of an incompatible sweep ({}); write to a new store "
           "(key 'store' in {} or --store) or undo the change",
           path, reason, spec.path);
  } else {
    results.provenance = {{"format", kStoreFormat},
                          {"format_version", kStoreFormatVersion},
                          {"created_at", utc_now()}};
  }
  record_spec(results, spec, fingerprint);
  extend_plan(results, spec, planned);
  Store store{path, std::move(results), std::move(lock)};
  save_store(store);
  return store;
}

std::vector<WorkUnit> pending_units(const Store& store, const std::vector<WorkUnit>& planned,
                                    bool retry_failed) {
  std::set<std::string> skip;
  for (const UnitRecord& u : store.results.units)
    if (u.status == UnitStatus::done || (u.status == UnitStatus::failed && !retry_failed))
      skip.insert(u.key);
  std::vector<WorkUnit> pending;
  for (const WorkUnit& w : planned)
    if (!skip.count(w.key)) pending.push_back(w);
  return pending;
}

void add_samples(Store& store, const UnitRun& run, std::vector<SampleRecord> samples) {
  UnitRecord& unit = unit_to_finish(store, run, UnitKind::coqa);
  config_of(store, unit).samples[unit.key] = std::move(samples);
  finish(unit, run, UnitStatus::done);
}

void add_bench(Store& store, const UnitRun& run, BenchRecord bench) {
  UnitRecord& unit = unit_to_finish(store, run, UnitKind::bench);
  bench.config = unit.config;
  config_of(store, unit).bench = std::move(bench);
  finish(unit, run, UnitStatus::done);
}

void add_sanity(Store& store, const UnitRun& run, std::vector<SanityOutput> outputs,
                std::optional<double> perplexity, std::optional<double> kl_vs_baseline,
                const std::string& baseline) {
  UnitRecord& unit = unit_to_finish(store, run, UnitKind::sanity);
  ConfigResults& config = config_of(store, unit);
  config.sanity = std::move(outputs);
  config.perplexity = perplexity;
  config.kl_vs_baseline = kl_vs_baseline;
  config.kl_baseline = baseline;
  finish(unit, run, UnitStatus::done);
}

void add_prepared(Store& store, const UnitRun& run) {
  finish(unit_to_finish(store, run, UnitKind::prepare), run, UnitStatus::done);
}

void add_preparation(Store& store, const std::string& config, PrepareRecord record) {
  ConfigResults* c = find_config(store.results, config);
  if (!c) fail("store '{}': a preparation of unknown config '{}'", store.path, config);
  c->preparations.push_back(std::move(record));
}

void add_unit_error(Store& store, const UnitRun& run, const std::string& message) {
  UnitRecord& unit = unit_to_finish(store, run, std::nullopt);
  store.results.errors.push_back({unit.config, unit.key, run.rank, run.host, message});
  finish(unit, run, UnitStatus::failed);
}

void set_metrics(Store& store, ConfigMetrics metrics, const std::string& from) {
  ConfigResults* config = find_config(store.results, metrics.config);
  if (!config) fail("store '{}': metrics for unknown config '{}'", store.path, metrics.config);
  config->metrics = std::move(metrics);
  config->metrics_from = from;
}

void set_provenance(Store& store, const std::string& key, const std::string& value) {
  store.results.provenance[key] = value;
}

void add_timing_segment(Store& store, TimingSegment segment) {
  segment.started_at = store.results.provenance["started_at"];
  segment.finished_at = utc_now();
  store.results.timing.push_back(std::move(segment));
}

void save_store(Store& store) {
  store.results.provenance["updated_at"] = utc_now();
  write_store(store.path, store.results);
}

}  // namespace qsweep
