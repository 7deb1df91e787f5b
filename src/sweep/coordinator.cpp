#include "qsweep/sweep/coordinator.h"

#include "channel.h"
#include "lm_eval_export.h"
#include "metrics_refresh.h"
#include "progress.h"
#include "provenance.h"
#include "sweep_timing.h"
#include "qsweep/sweep/stop_signal.h"
#include "worker_loop.h"
#include "qsweep/eval/coqa.h"
#include "qsweep/store/store.h"
#include "qsweep/sweep/protocol.h"
#include "qsweep/sweep/rank_watch.h"
#include "qsweep/sweep/scheduler.h"
#include "qsweep/sweep/validate_inputs.h"
#include "qsweep/util/durable_file.h"
#include "qsweep/util/log.h"

#include <fmt/ranges.h>

#include <chrono>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>

namespace qsweep {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Rank 0's view of the sweep while it runs.
struct Coordination {
  Store& store;
  const SweepSpec& spec;
  std::map<std::string, WorkUnit> plan;  // every planned unit by key
  Scheduler scheduler;
  RankWatch watch;
  Progress progress;
  Clock::time_point start = Clock::now();
  std::set<int> gone;        // ranks that left or were given up on
  std::set<int> lost;        // of those, the ones given up on
  // Ranks that asked for a unit when none was pending but others were in flight: their reply
  // waits, since a rank lost mid-unit gives its unit back. The config each holds, and since when
  // it waits (its end idle time if no unit comes).
  struct Waiting {
    std::string held;
    double since;
  };
  std::map<int, Waiting> waiting;
  int stop_code = 0;         // set once the sweep must stop: no more units are handed out
  std::string host;          // rank 0's, which records the units it skips
  SweepTiming timing;
};

// A store the disk refuses is not retried: the file on disk keeps every unit saved so far, and
// units run on would be lost anyway.
void save(Coordination& c) {
  const Clock::time_point start = Clock::now();
  try {
    save_store(c.store);
    ++c.timing.store_writes;
    c.timing.store_write_seconds += seconds_since(start);
  } catch (const WriteError& e) {
    log_error("{}; the store keeps the units saved before; stopping the sweep: free space, then "
              "resubmit to resume",
              e.what());
    c.stop_code = kExitStoreWrite;
  }
}

// A config whose prepare or sanity unit failed (a model that does not load, a quantization that
// throws) would fail each of its other units the same way: they are taken off the queue before
// the next hand-out, and recorded as skipped, naming the unit that failed and why, instead of
// each repeating the failure.
bool fails_its_config(const Coordination& c, const UnitResult& r) {
  const UnitKind kind = c.plan.at(r.key).kind;
  return r.error && (kind == UnitKind::prepare || kind == UnitKind::sanity);
}

void skip_rest_of_config(Coordination& c, const UnitResult& r, const std::vector<WorkUnit>& dropped) {
  if (dropped.empty()) return;
  for (const WorkUnit& u : dropped)
    add_unit_error(c.store, {u.key, 0, c.host, 0},
                   fmt::format("skipped: {} failed: {}", r.key, r.error->message));
  c.progress.done += dropped.size();
  c.progress.failed += dropped.size();
  log_warning("config {}: {} failed, its {} other unit(s) skipped", r.config, r.key, dropped.size());
}

void record(Coordination& c, const UnitResult& r, const std::vector<WorkUnit>& dropped) {
  const Clock::time_point start = Clock::now();
  const UnitRun run{r.key, r.rank, r.host, r.seconds};
  if (r.prepare) add_preparation(c.store, r.config, *r.prepare);
  const UnitKind kind = c.plan.at(r.key).kind;
  if (r.error) {
    add_unit_error(c.store, run, r.error->message);
    skip_rest_of_config(c, r, dropped);
  } else {
    switch (kind) {
      case UnitKind::prepare: add_prepared(c.store, run); break;
      case UnitKind::coqa: add_samples(c.store, run, r.samples); break;
      case UnitKind::bench: add_bench(c.store, run, *r.bench); break;
      case UnitKind::sanity:
        add_sanity(c.store, run, r.sanity, r.perplexity, r.kl_vs_baseline, c.spec.baseline);
        break;
    }
  }
  refresh_metrics(c.store, c.spec);
  if (c.stop_code == 0) save(c);
  c.progress.log(r, c.plan.at(r.key).kind, find_config(c.store.results, r.config));
  c.timing.record_seconds += seconds_since(start);
}

// A unit that failed because its rank's device broke is not the unit's fault: it goes to
// another rank (once) instead of into the store as a failure. Returns whether the result is to
// be recorded.
bool settle(Coordination& c, int rank, const WorkerReport& report) {
  const UnitResult& r = *report.result;
  note_report(c.timing, rank, report, c.plan.at(r.key).kind);
  c.watch.finished(rank, r.seconds);
  const bool device_fault = r.error && report.leaving;
  if (c.scheduler.finish(rank, device_fault)) {
    log_warning("{} failed on rank {} as its device broke; requeued for another rank", r.key, rank);
    return false;
  }
  return true;
}

void leave(Coordination& c, int rank, double at) {
  note_left(c.timing, rank, at);
  c.scheduler.leave(rank);
  c.watch.forget(rank);
  c.gone.insert(rank);
}

// A rank gone silent or stuck: its unit goes to the others, and whatever it says later is
// answered with stop. Its process is left alone (rank 0 cannot end one process of an MPI job).
void give_up_on(Coordination& c, int rank, const std::string& why) {
  const std::optional<std::string> unit = c.scheduler.unit_of(rank);
  log_error("rank {} is lost ({}); {} the sweep carries on without it", rank, why,
            unit ? fmt::format("its unit {} goes to another rank;", *unit) : "");
  if (unit) {
    const WorkUnit& w = c.plan.at(*unit);
    c.store.results.errors.push_back(
        {w.config, w.key, rank, "", fmt::format("rank {} lost: {}; the unit was run again", rank, why)});
  }
  c.waiting.erase(rank);
  leave(c, rank, seconds_since(c.start));
  c.lost.insert(rank);
}

// Whether a rank given no unit waits for one: the sweep goes on and units are in flight
// elsewhere, any of which a lost rank gives back.
bool must_wait(const Coordination& c, const Assignment& reply) {
  return !reply.unit && c.stop_code == 0 && c.scheduler.in_flight() > 0;
}

// Sends a rank its reply: the unit it starts, or none, and it leaves (idle from `idle_since`).
void deliver(Coordination& c, int rank, const Assignment& reply, double idle_since,
             Mailbox& local) {
  if (reply.unit)
    c.watch.started(rank, *reply.unit, seconds_since(c.start));
  else
    leave(c, rank, idle_since);
  send_reply(rank, local, encode_assignment(reply));
}

// One report from `rank`: its next unit (or stop) sent back, then its result recorded.
void answer(Coordination& c, int rank, const WorkerReport& report, Mailbox& local) {
  Assignment reply;
  if (c.lost.count(rank)) {
    log_warning("rank {}, given up on before, reported again; its result is dropped and it is told "
                "to stop", rank);
    send_reply(rank, local, encode_assignment(reply));
    return;
  }
  const double heard_at = seconds_since(c.start);
  c.watch.heard(rank, heard_at);
  if (!report.device.empty()) set_provenance(c.store, fmt::format("rank{}", rank), report.device);
  const bool to_record = report.result && settle(c, rank, report);
  if (!report.result) note_first_report(c.timing, rank, report);
  const std::vector<WorkUnit> dropped = to_record && fails_its_config(c, *report.result)
                                            ? c.scheduler.drop_config(report.result->config)
                                            : std::vector<WorkUnit>{};
  if (report.leaving)
    log_error("rank {} leaves the sweep{}", rank,
              report.failure.empty() ? " after a device error; its next units go to others"
                                     : ": " + report.failure);
  else if (c.stop_code == 0)
    reply.unit = c.scheduler.next(rank, report.held);
  if (!report.leaving && must_wait(c, reply))
    c.waiting[rank] = {report.held, heard_at};
  else
    deliver(c, rank, reply, heard_at, local);
  // After the reply, so the rank computes its next unit while rank 0 writes the store (a store
  // the disk refuses then stops the sweep at the rank's next report, not this one).
  if (to_record) record(c, *report.result, dropped);
}

// Answers the waiting ranks once a unit is pending again (a lost rank's) or none is left in flight
// to come back; a waiting rank keeps sending heartbeats, so it is watched as any other.
void serve_waiting(Coordination& c, Mailbox& local) {
  for (auto it = c.waiting.begin(); it != c.waiting.end();) {
    Assignment reply;
    if (c.stop_code == 0) reply.unit = c.scheduler.next(it->first, it->second.held);
    if (must_wait(c, reply)) {
      ++it;
      continue;
    }
    const int rank = it->first;
    const double since = it->second.since;
    it = c.waiting.erase(it);
    deliver(c, rank, reply, since, local);
  }
}

// This run's timing into the store (saved by the caller) and rank 0's log.
void close_timing(Coordination& c, const std::string& ended) {
  TimingSegment segment = close_segment(c.timing, seconds_since(c.start), ended);
  log_info("where the time went, per rank:\n{}", format_timing_table(segment));
  add_timing_segment(c.store, std::move(segment));
}

// SIGTERM or SIGUSR1: the units in flight are abandoned (they run again on resume; a unit may
// take longer than Slurm's grace time), the store already holds every finished unit.
void stop_on_signal(Coordination& c, int signal, int ranks) {
  c.stop_code = kExitStopped;
  size_t done = 0;  // done or failed: not to be run again by a plain resubmit
  for (const UnitRecord& u : c.store.results.units) done += u.status != UnitStatus::todo;
  log_error("stopping on {}: {} units done, {} left, resubmit to resume", stop_signal_name(signal),
            done, c.store.results.units.size() - done);
  for (int rank = 1; rank < ranks; ++rank)
    if (!c.gone.count(rank)) send_stop(rank);
  set_provenance(c.store, "stopped_by", stop_signal_name(signal));
  close_timing(c, fmt::format("stopped by {}", stop_signal_name(signal)));
  save(c);
}

// Rank 0's main thread: hand out units, record results, watch the ranks, until every worker
// has left or the sweep is stopped.
void coordinate(Coordination& c, int ranks, Mailbox& local) {
  while (static_cast<int>(c.gone.size()) < ranks) {
    if (const int signal = stop_signal()) {
      stop_on_signal(c, signal, ranks);
      return;
    }
    const double now = seconds_since(c.start);
    c.watch.heard(0, now);  // rank 0's worker is a thread of this process
    for (int rank : heartbeats()) c.watch.heard(rank, now);
    if (const auto lost = c.watch.lost(now)) {
      give_up_on(c, lost->first, lost->second);
      serve_waiting(c, local);
    }
    auto message = next_report(local);
    if (!message) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    answer(c, message->first, decode_report(message->second), local);
    serve_waiting(c, local);
  }
}

// The end of a sweep that ran to its end (or that the disk stopped).
int finish(Coordination& c, std::future<std::string>& hashes) {
  if (c.stop_code != 0) return c.stop_code;
  close_timing(c, "finished");
  set_provenance(c.store, "model_sha256", hashes.get());
  set_provenance(c.store, "finished_at", c.store.results.provenance["updated_at"]);
  save(c);
  if (c.stop_code != 0) return c.stop_code;
  try {
    write_lm_eval_files(c.store, c.spec);
  } catch (const WriteError& e) {
    log_error("{}; the store itself is complete", e.what());
    return kExitStoreWrite;
  }
  std::cout << "\n" << format_store_report(c.store.path, c.store.results) << std::flush;
  const int code = sweep_exit_code(c.store.results);
  if (c.lost.empty()) return code;
  log_error("rank(s) {} were lost during the sweep; every unit they held ran elsewhere; check "
            "their nodes",
            fmt::join(c.lost, ", "));
  return code == 0 ? kExitRankLost : code;
}

// A rank other than 0: units on a compute thread, MPI on this one.
SweepOutcome run_remote_worker(const SweepSpec& spec, const RunOptions& options,
                               const RankInfo& rank) {
  // Shared with the compute thread, which may outlive this function when the sweep is stopped.
  auto box = std::make_shared<Mailbox>();
  std::thread compute([&spec, rank, box] {
    worker_loop(spec, rank, [box](const std::string& r) { return exchange_local(*box, r); });
  });
  if (relay_to_rank0(*box, options.watch.heartbeat_timeout / 10) == MessengerEnd::finished) {
    compute.join();
    return {0, false, true};
  }
  // The unit in flight cannot be interrupted; the process ends without waiting for it.
  compute.detach();
  log_warning("rank {} stops{}, abandoning the unit it was running", rank.rank,
              stop_signal() ? fmt::format(" on {}", stop_signal_name(stop_signal())) : " as rank 0 said");
  return {kExitStopped, true, true};
}

// Rank 0's state once every input checked out and the store is open: nothing is handed out
// before this exists.
struct SweepStart {
  Store store;
  std::vector<WorkUnit> planned;
  std::vector<WorkUnit> pending;
};

SweepStart start_sweep(const SweepSpec& spec, const RunOptions& options, const MpiContext& mpi) {
  // Before the store is touched: a bad input leaves it as it was.
  validate_sweep_inputs(spec);
  const std::string store_path = options.store.empty() ? spec.store : options.store;
  const size_t stories = spec.evaluation.enabled ? load_coqa(spec.evaluation.coqa).stories.size() : 0;
  std::vector<WorkUnit> planned = expand_units(spec, stories);
  Store store = open_store_for_writing(store_path, spec, planned);
  record_provenance(store, spec, mpi);
  // A resumed job may have changed what derived results depend on (baseline, resamples).
  redo_stale_sanity(store, spec);
  refresh_metrics(store, spec);
  save_store(store);
  std::vector<WorkUnit> pending = pending_units(store, planned, options.retry_failed);
  return {std::move(store), std::move(planned), std::move(pending)};
}

}  // namespace

SweepOutcome run_sweep(const SweepSpec& spec, const RunOptions& options, const MpiContext& mpi) {
  const RankInfo rank{mpi.rank, mpi.local_rank, mpi.local_size, mpi.host};
  // Every rank checks its own device, rank 0 the inputs and the store; a failure anywhere ends
  // every rank with one message before any unit is handed out.
  std::optional<SweepStart> start;
  agree_across_ranks([&] {
    validate_device(spec, mpi.local_rank);
    if (mpi.rank == 0) start.emplace(start_sweep(spec, options, mpi));
  });
  if (mpi.rank != 0) return run_remote_worker(spec, options, rank);
  Store& store = start->store;
  const std::vector<WorkUnit>& planned = start->planned;
  const std::vector<WorkUnit>& pending = start->pending;
  // Hashing gigabytes of weights takes seconds: it runs beside the sweep, recorded at the end.
  std::future<std::string> hashes = std::async(std::launch::async, model_hashes, std::cref(spec));

  log_info("{} units planned, {} already done, {} to run on {} rank(s)", planned.size(),
           planned.size() - pending.size(), pending.size(), mpi.size);
  Coordination c{store, spec, {}, Scheduler(pending), RankWatch(options.watch), {},
                 Clock::now(), {}, {}, {}, 0, mpi.host, {}};
  c.timing.ranks = mpi.size;
  // A rank that stops before its first report (a node frozen while it loads) would otherwise be
  // waited for forever. Rank 0's own worker is a thread of this process: not watched.
  for (int r = 1; r < mpi.size; ++r) c.watch.expect(r, 0.0);
  for (const auto& u : planned) c.plan[u.key] = u;
  for (const auto& u : pending) c.progress.add_pending(u.kind);
  c.progress.workers = mpi.size;

  // Shared with rank 0's own worker, which may outlive this function when the sweep is stopped.
  auto local = std::make_shared<Mailbox>();
  std::thread own_worker([&spec, rank, local] {
    worker_loop(spec, rank, [local](const std::string& r) { return exchange_local(*local, r); });
  });
  try {
    coordinate(c, mpi.size, *local);
  } catch (...) {
    own_worker.detach();  // the error ends the process (cli_run); the worker must not outlive it
    throw;
  }
  // Rank 0's own worker may be inside a unit (stopped sweep) or hung (lost): not waited for.
  const bool own_worker_left = c.gone.count(0) && !c.lost.count(0);
  if (own_worker_left) own_worker.join(); else own_worker.detach();
  const int code = finish(c, hashes);
  // MPI_Finalize waits for every rank, a lost one too, forever.
  return {code, !own_worker_left, c.lost.empty()};
}

int sweep_exit_code(const Results& results) {
  size_t failed = 0, not_run = 0;
  for (const UnitRecord& u : results.units) {
    failed += u.status == UnitStatus::failed;
    not_run += u.status == UnitStatus::todo;
  }
  // Units that never ran mean every rank left the sweep (a model, tokenizer or device that no
  // rank could use): the job did not do its work, whatever else succeeded.
  if (not_run > 0) {
    log_error("{} of {} units did not run: every rank left the sweep (see the errors above); fix "
              "the cause and resubmit to resume",
              not_run, results.units.size());
    return kExitIncomplete;
  }
  // Failures of earlier runs that were not retried count too: the store is not complete.
  return failed > 0 ? kExitUnitsFailed : 0;
}

}  // namespace qsweep
