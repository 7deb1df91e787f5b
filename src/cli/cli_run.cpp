// qsweep run JOB.yaml: the sweep, under mpirun or srun (one rank per GPU) or alone.
#include "cli.h"
#include "qsweep/sweep/coordinator.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/sweep/mpi.h"
#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/sweep/stop_signal.h"

#include <cstdlib>
#include <ctime>
#include <iostream>
#include <optional>

#include <fmt/format.h>
#include <unistd.h>

namespace qsweep::cli {
namespace {

struct RunArgs {
  std::string job;
  RunOptions options;
  bool verbose = false;
};

// What tells this job's log files from another's: Slurm's job id (a requeued job keeps it and
// appends), else rank 0's start time and process id.
std::string job_id() {
  if (const char* slurm = std::getenv("SLURM_JOB_ID"); slurm != nullptr && *slurm != '\0') return slurm;
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  return fmt::format("local{}-{}", stamp, ::getpid());
}

SweepSpec load_spec(const RunArgs& a, const MpiContext& mpi, const std::string& job) {
  SweepSpec spec = load_sweep_spec(a.job);
  // --store moves the default cache with the store; every rank parses the same arguments.
  spec.cache_dir = cache_dir_of(spec, a.options.store);
  LogOptions log;
  log.rank = mpi.rank;
  log.host = mpi.host;
  log.dir = spec.log_dir;
  log.file_stem = spec.name + "-" + job;
  log.console = mpi.rank == 0;
  log.level = a.verbose ? LogLevel::debug : LogLevel::info;
  init_logging(log);
  return spec;
}

int run(const RunArgs& a) {
  // MPI_Init wants argc/argv; qsweep's own arguments are parsed already and Open MPI needs none.
  int argc = 0;
  char** argv = nullptr;
  const MpiContext mpi = init_mpi(&argc, &argv);
  install_stop_signals();
  int code = 0;
  try {
    // Before anything that may fail on one rank only: a collective must be reached by all.
    const std::string job = broadcast_from_root(job_id(), mpi);
    std::optional<SweepSpec> spec;
    agree_across_ranks([&] { spec.emplace(load_spec(a, mpi, job)); });
    if (mpi.rank == 0) log_info("qsweep run {} on {} rank(s)", a.job, mpi.size);
    const SweepOutcome outcome = run_sweep(*spec, a.options, mpi);
    code = outcome.code;
    if (outcome.abandoned || !outcome.can_finalize) {
      // A unit still runs on another thread of this process (or a lost rank would keep
      // MPI_Finalize waiting): end here, before any destructor pulls the model from under it.
      if (outcome.can_finalize) finalize_mpi();
      std::cout << std::flush;
      std::clog << std::flush;
      std::_Exit(code);
    }
  } catch (const AgreedError& e) {
    // A bad input, known to every rank before any unit ran: one message, every rank exits 2.
    if (mpi.rank == 0) std::cerr << "qsweep: error: " << e.what() << "\n";
    code = 2;
  } catch (const std::exception& e) {
    // During the sweep, on one rank: ranks waiting for rank 0 would hang.
    std::cerr << "qsweep: error: rank " << mpi.rank << ": " << e.what() << "\n";
    if (mpi.size > 1) abort_mpi(2);
    code = 2;
  }
  finalize_mpi();
  return code;
}

}  // namespace

void add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Run a sweep (under mpirun/srun: one rank per GPU)");
  cmd->add_option("job", a->job, "Sweep job file (jobs/*.yaml)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--store", a->options.store, "Results store (overrides the job's `store`)");
  cmd->add_flag("--retry-failed", a->options.retry_failed, "Redo units that failed before");
  cmd->add_flag("-v,--verbose", a->verbose, "Debug logging");
  WatchOptions& w = a->options.watch;
  cmd->add_option("--heartbeat-timeout", w.heartbeat_timeout,
                  "Seconds without a heartbeat after which a busy rank is given up on")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--unit-deadline-factor", w.deadline_factor,
                  "A unit running this many times longer than the longest of its kind so far "
                  "loses its rank")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  cmd->add_option("--min-unit-deadline", w.min_deadline,
                  "Seconds a unit may always run before its rank is given up on")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->callback([a] {
    const int code = run(*a);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace qsweep::cli
