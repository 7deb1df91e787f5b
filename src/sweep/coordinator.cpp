#include "qsweep/sweep/coordinator.h"

#include "channel.h"
#include "lm_eval_export.h"
#include "metrics_refresh.h"
#include "progress.h"
#include "provenance.h"
#include "worker_loop.h"
#include "qsweep/eval/coqa.h"
#include "qsweep/store/store.h"
#include "qsweep/sweep/protocol.h"
#include "qsweep/sweep/scheduler.h"
#include "qsweep/util/log.h"

#include <chrono>
#include <future>
#include <iostream>
#include <map>
#include <thread>

namespace qsweep {
namespace {

// Rank 0's view of the sweep while it runs.
struct Coordination {
  Store& store;
  const SweepSpec& spec;
  std::map<std::string, WorkUnit> plan;  // every planned unit by key
  Scheduler scheduler;
  Progress progress;
};

void record(Coordination& c, const UnitResult& r) {
  const UnitRun run{r.key, r.rank, r.host, r.seconds};
  if (r.prepare) add_preparation(c.store, r.config, *r.prepare);
  if (r.error) {
    add_unit_error(c.store, run, r.error->message);
  } else {
    switch (c.plan.at(r.key).kind) {
      case UnitKind::prepare: add_prepared(c.store, run); break;
      case UnitKind::coqa: add_samples(c.store, run, r.samples); break;
      case UnitKind::bench: add_bench(c.store, run, *r.bench); break;
      case UnitKind::sanity:
        add_sanity(c.store, run, r.sanity, r.perplexity, r.kl_vs_baseline);
        break;
    }
  }
  refresh_metrics(c.store, c.spec);
  save_store(c.store);
  c.progress.log(r, c.plan.at(r.key).kind, find_config(c.store.results, r.config));
}

// A unit that failed because its rank's device broke is not the unit's fault: it goes to
// another rank (once) instead of into the store as a failure.
void take_result(Coordination& c, int rank, const WorkerReport& report) {
  const UnitResult& r = *report.result;
  const bool device_fault = r.error && report.leaving;
  if (c.scheduler.finish(rank, device_fault)) {
    log_warning("{} failed on rank {} as its device broke; requeued for another rank", r.key, rank);
    return;
  }
  record(c, r);
}

// Rank 0's main thread: hand out units, record results, until every worker has left.
void coordinate(Coordination& c, int ranks, Mailbox& local) {
  int active = ranks;
  while (active > 0) {
    auto message = next_report(local);
    if (!message) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    const int rank = message->first;
    const WorkerReport report = decode_report(message->second);
    if (!report.device.empty()) set_provenance(c.store, fmt::format("rank{}", rank), report.device);
    if (report.result) take_result(c, rank, report);
    Assignment answer;
    if (report.leaving)
      log_error("rank {} leaves the sweep{}", rank,
                report.failure.empty() ? " after a device error; its next units go to others"
                                       : ": " + report.failure);
    else
      answer.unit = c.scheduler.next(rank, report.held);
    if (!answer.unit) {
      c.scheduler.leave(rank);
      --active;
    }
    send_reply(rank, local, encode_assignment(answer));
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
  // Hashing gigabytes of weights takes seconds: it runs beside the sweep, recorded at the end.
  std::future<std::string> hashes = std::async(std::launch::async, model_hashes, std::cref(spec));

  std::vector<WorkUnit> pending = pending_units(store, planned, options.retry_failed);
  log_info("{} units planned, {} already done, {} to run on {} rank(s)", planned.size(),
           planned.size() - pending.size(), pending.size(), mpi.size);
  Coordination c{store, spec, {}, Scheduler(pending), {}};
  for (const auto& u : planned) c.plan[u.key] = u;
  for (const auto& u : pending) c.progress.add_pending(u.kind);
  c.progress.workers = mpi.size;

  Mailbox local;
  std::thread own_worker(
      [&] { worker_loop(spec, rank, [&](const std::string& r) { return exchange_local(local, r); }); });
  coordinate(c, mpi.size, local);
  own_worker.join();

  set_provenance(store, "model_sha256", hashes.get());
  set_provenance(store, "finished_at", store.results.provenance["updated_at"]);
  save_store(store);
  write_lm_eval_files(store, spec);
  std::cout << "\n" << format_store_report(store.path, store.results) << std::flush;
  return sweep_exit_code(store.results);
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
