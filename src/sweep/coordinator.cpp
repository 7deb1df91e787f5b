#include "qsweep/sweep/coordinator.h"

#include "qsweep/eval/coqa.h"
#include "qsweep/eval/lm_eval_json.h"
#include "qsweep/util/text.h"
#include "qsweep/bench/device.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/util/results_json.h"
#include "qsweep/eval/stats.h"
#include "qsweep/store/store.h"
#include "qsweep/sweep/worker.h"
#include "qsweep_version.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <iostream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace qsweep {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Messages carry generated text and error messages, which need not be valid UTF-8: replace
// bad bytes rather than let one prediction abort the sweep.
std::string wire(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

json unit_json(const WorkUnit& u) {
  return {{"key", u.key},     {"config", u.config}, {"kind", unit_kind_name(u.kind)},
          {"shard", u.shard}, {"begin", u.begin},   {"end", u.end}};
}

WorkUnit unit_from_json(const json& j) {
  WorkUnit u;
  u.key = j.at("key");
  u.config = j.at("config");
  const std::string kind = j.at("kind");
  u.kind = kind == "bench" ? UnitKind::bench : kind == "sanity" ? UnitKind::sanity : UnitKind::coqa;
  u.shard = j.at("shard");
  u.begin = j.at("begin");
  u.end = j.at("end");
  return u;
}

// Rank 0's own worker runs on a thread and talks to the coordinator through this mailbox
// instead of MPI, so only the main thread ever calls MPI (MPI_THREAD_FUNNELED suffices).
struct Mailbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<std::string> report, reply;
};

std::string exchange_local(Mailbox& box, const std::string& report) {
  std::unique_lock<std::mutex> lock(box.mutex);
  box.report = report;
  box.changed.wait(lock, [&] { return box.reply.has_value(); });
  std::string reply = std::move(*box.reply);
  box.reply.reset();
  return reply;
}

std::string exchange_remote(const std::string& report) {
  send_message(0, MessageTag::report, report);
  return receive_message(0, MessageTag::assignment);
}

// A worker asks for a unit, runs it, and sends the result with its next request.
void worker_loop(const SweepSpec& spec, const RankInfo& rank,
                 const std::function<std::string(const std::string&)>& exchange) {
  std::optional<UnitRunner> runner;
  json report = {{"result", nullptr}, {"held", ""}, {"leaving", false}};
  try {
    runner.emplace(spec, rank);
    report["device"] = runner->device();
  } catch (const std::exception& e) {
    log_error("rank {} cannot start: {}", rank.rank, e.what());
    report["leaving"] = true;
    report["failure"] = e.what();
  }
  for (;;) {
    const json reply = json::parse(exchange(wire(report)));
    if (reply.value("stop", false) || !runner) return;
    const WorkUnit unit = unit_from_json(reply.at("unit"));
    const UnitResult result = runner->run(unit);
    if (result.error) log_warning("{} failed: {}", unit.key, result.error->message);
    report = {{"result", result}, {"held", runner->prepared_config()}, {"leaving", runner->broken()}};
  }
}

// Which unit a rank gets next: its prepared config's next unit, else a config no other rank is
// on (so configs spread over ranks and each is loaded about once), else any.
class Scheduler {
 public:
  explicit Scheduler(std::vector<WorkUnit> pending) : pending_(pending.begin(), pending.end()) {}

  std::optional<WorkUnit> next(int rank, const std::string& held) {
    held_[rank] = held;
    auto take = [&](auto it) {
      WorkUnit u = *it;
      pending_.erase(it);
      held_[rank] = u.config;
      return u;
    };
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (it->config == held) return take(it);
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (!held_by_other(rank, it->config)) return take(it);
    if (!pending_.empty()) return take(pending_.begin());
    return std::nullopt;
  }
  void leave(int rank) { held_.erase(rank); }

 private:
  bool held_by_other(int rank, const std::string& config) const {
    for (const auto& [r, c] : held_)
      if (r != rank && c == config) return true;
    return false;
  }
  std::deque<WorkUnit> pending_;
  std::map<int, std::string> held_;
};

struct Progress {
  size_t total = 0, done = 0, failed = 0;
  Clock::time_point start = Clock::now();

  void log(const UnitResult& r) {
    ++done;
    if (r.error) ++failed;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double eta = done ? elapsed / done * (total - done) : 0;
    log_info("[{}/{}] {} {} on rank {} in {:.1f} s{} | elapsed {:.0f} s, ETA {:.0f} s", done,
             total, r.key, r.error ? "FAILED" : "done", r.rank, r.seconds,
             failed ? fmt::format(" | {} failed", failed) : "", elapsed, eta);
  }
};

bool coqa_complete(const Results& results, const std::string& config) {
  bool any = false;
  for (const auto& u : results.units) {
    if (u.config != config || u.kind != UnitKind::coqa) continue;
    if (u.status != UnitStatus::done) return false;
    any = true;
  }
  return any;
}

// Metrics come from all of a config's samples once its shards are in, never from shard means;
// paired comparisons need the baseline complete too, so configs are revisited when it is.
void update_metrics(Store& store, const SweepSpec& spec) {
  const ConfigResults* baseline = find_config(store.results, spec.baseline);
  const bool baseline_ready = baseline && coqa_complete(store.results, spec.baseline);
  const std::vector<SampleRecord> baseline_samples =
      baseline_ready ? all_samples(*baseline) : std::vector<SampleRecord>{};
  for (const auto& config : spec.configs) {
    const ConfigResults* c = find_config(store.results, config.name);
    if (!c || !coqa_complete(store.results, config.name)) continue;
    if (c->metrics && (c->metrics->em_vs_baseline || !baseline_ready)) continue;
    BootstrapOptions options;
    options.resamples = spec.evaluation.bootstrap_resamples;
    options.seed = spec.seed;
    set_metrics(store, compute_config_metrics(config.name, all_samples(*c),
                                              baseline_ready ? &baseline_samples : nullptr,
                                              options, spec.baseline));
  }
}

void record(Store& store, const SweepSpec& spec, const std::map<std::string, WorkUnit>& plan,
            const UnitResult& r) {
  const UnitRun run{r.key, r.rank, r.host, r.seconds};
  if (r.error) {
    add_unit_error(store, run, r.error->message);
  } else {
    switch (plan.at(r.key).kind) {
      case UnitKind::coqa: add_samples(store, run, r.samples); break;
      case UnitKind::bench: add_bench(store, run, *r.bench); break;
      case UnitKind::sanity: add_sanity(store, run, r.sanity, r.perplexity, r.kl_vs_baseline); break;
    }
  }
  update_metrics(store, spec);
  save_store(store);
}

void reply(int rank, Mailbox& local, const json& message) {
  if (rank != 0) {
    send_message(rank, MessageTag::assignment, wire(message));
    return;
  }
  std::lock_guard<std::mutex> lock(local.mutex);
  local.reply = wire(message);
  local.changed.notify_all();
}

std::optional<std::pair<int, std::string>> next_report(Mailbox& local) {
  {
    std::lock_guard<std::mutex> lock(local.mutex);
    if (local.report) {
      std::string r = std::move(*local.report);
      local.report.reset();
      return std::make_pair(0, std::move(r));
    }
  }
  return poll_message(MessageTag::report);
}

// Rank 0's main thread: hand out units, record results, until every worker has left.
void coordinate(Store& store, const SweepSpec& spec, const std::vector<WorkUnit>& planned,
                const RunOptions& options, const MpiContext& mpi, Mailbox& local,
                Progress& progress) {
  std::map<std::string, WorkUnit> plan;
  for (const auto& u : planned) plan[u.key] = u;
  std::vector<WorkUnit> pending = pending_units(store, planned, options.retry_failed);
  progress.total = pending.size();
  log_info("{} units planned, {} already done, {} to run on {} rank(s)", planned.size(),
           planned.size() - pending.size(), pending.size(), mpi.size);
  Scheduler scheduler(std::move(pending));
  int active = mpi.size;
  while (active > 0) {
    auto message = next_report(local);
    if (!message) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    const auto [rank, text] = *message;
    const json report = json::parse(text);
    if (report.contains("device"))
      set_provenance(store, fmt::format("rank{}", rank), report["device"].get<std::string>());
    if (!report.at("result").is_null()) {
      const UnitResult result = report.at("result").get<UnitResult>();
      record(store, spec, plan, result);
      progress.log(result);
    }
    std::optional<WorkUnit> unit;
    if (report.value("leaving", false)) {
      log_error("rank {} leaves the sweep{}", rank,
                report.contains("failure") ? ": " + report["failure"].get<std::string>()
                                           : " after a GPU error; its next units go to others");
    } else {
      unit = scheduler.next(rank, report.value("held", std::string()));
    }
    if (unit) {
      reply(rank, local, {{"unit", unit_json(*unit)}});
    } else {
      scheduler.leave(rank);
      reply(rank, local, {{"stop", true}});
      --active;
    }
  }
}

void record_provenance(Store& store, const SweepSpec& spec, const MpiContext& mpi) {
  set_provenance(store, "qsweep_git", QSWEEP_GIT_HASH);
  set_provenance(store, "runtime", runtime_versions());
  set_provenance(store, "mpi_size", std::to_string(mpi.size));
  set_provenance(store, "coordinator_host", mpi.host);
  set_provenance(store, "seed", std::to_string(spec.seed));
  set_provenance(store, "started_at", store.results.provenance["updated_at"]);
  if (spec.evaluation.enabled) set_provenance(store, "coqa_sha256", sha256_file(spec.evaluation.coqa));
}

// "file sha256" per line for config.json and every weight file of each model the sweep uses.
// Hashing gigabytes takes seconds, so it runs beside the sweep and is recorded at the end.
std::string model_hashes(const SweepSpec& spec) try {
  std::set<std::string> dirs = {spec.model};
  for (const auto& c : spec.configs)
    if (!c.model.empty()) dirs.insert(c.model);
  std::string lines;
  for (const auto& dir : dirs)
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name == "config.json" || name.find(".safetensors") != std::string::npos)
        lines += fmt::format("{} {}\n", entry.path().string(), sha256_file(entry.path().string()));
    }
  return lines;
} catch (const std::exception& e) {
  // Provenance is worth a line in the store, not the sweep's results.
  return std::string("not available: ") + e.what();
}

// lm-eval-style results, one JSON file per evaluated config, beside the store:
// STORE_DIR/<store name>.lm_eval/<config>.json.
void write_lm_eval_files(const Store& store, const SweepSpec& spec) {
  const std::filesystem::path dir = std::filesystem::path(store.path).replace_extension(".lm_eval");
  BootstrapOptions bootstrap;
  bootstrap.resamples = spec.evaluation.bootstrap_resamples;
  bootstrap.seed = spec.seed;
  for (const ConfigResults& c : store.results.configs) {
    if (!c.metrics) continue;
    std::filesystem::create_directories(dir);
    const std::vector<SampleRecord> samples = all_samples(c);
    const json config = {{"model", spec.model}, {"qsweep_config", c.name},
                         {"fingerprint", c.fingerprint}, {"store", store.path},
                         {"coqa_file", spec.evaluation.coqa},
                         {"batch_size", spec.evaluation.batch_size},
                         {"add_bos", spec.evaluation.add_bos}};
    const SampleCounts counts{samples.size(), samples.size()};
    write_file_atomic((dir / (c.name + ".json")).string(),
                      lm_eval_results_json(*c.metrics, counts, config, bootstrap).dump(2) + "\n");
  }
}

}  // namespace

int run_sweep(const SweepSpec& spec, const RunOptions& options, const MpiContext& mpi) {
  const RankInfo rank{mpi.rank, mpi.local_rank, mpi.local_size, mpi.host};
  if (mpi.rank != 0) {
    worker_loop(spec, rank, exchange_remote);
    return 0;
  }
  const std::string store_path = options.store.empty() ? spec.store : options.store;
  const size_t stories = spec.evaluation.enabled ? load_coqa(spec.evaluation.coqa).stories.size() : 0;
  const std::vector<WorkUnit> planned = expand_units(spec, stories);
  Store store = open_store_for_writing(store_path, spec, planned);
  record_provenance(store, spec, mpi);
  std::future<std::string> hashes = std::async(std::launch::async, model_hashes, std::cref(spec));
  Mailbox local;
  std::thread own_worker(
      [&] { worker_loop(spec, rank, [&](const std::string& r) { return exchange_local(local, r); }); });
  Progress progress;
  coordinate(store, spec, planned, options, mpi, local, progress);
  own_worker.join();
  set_provenance(store, "model_sha256", hashes.get());
  set_provenance(store, "finished_at", store.results.provenance["updated_at"]);
  save_store(store);
  write_lm_eval_files(store, spec);
  std::cout << "\n" << format_store_report(store.path, store.results) << std::flush;
  // Failures of earlier runs that were not retried count too: the store is not complete.
  for (const UnitRecord& u : store.results.units)
    if (u.status == UnitStatus::failed) return 1;
  return 0;
}

}  // namespace qsweep
