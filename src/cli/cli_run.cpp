// qsweep run JOB.yaml: the sweep, under mpirun or srun (one rank per GPU) or alone.
#include "cli.h"
#include "qsweep/sweep/coordinator.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/sweep/mpi.h"
#include "qsweep/sweep/sweep_spec.h"

#include <cstdlib>
#include <ctime>
#include <iostream>

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

int run(const RunArgs& a) {
  // MPI_Init wants argc/argv; qsweep's own arguments are parsed already and Open MPI needs none.
  int argc = 0;
  char** argv = nullptr;
  const MpiContext mpi = init_mpi(&argc, &argv);
  int code = 0;
  try {
    SweepSpec spec = load_sweep_spec(a.job);
    // --store moves the default cache with the store; every rank parses the same arguments.
    spec.cache_dir = cache_dir_of(spec, a.options.store);
    LogOptions log;
    log.rank = mpi.rank;
    log.host = mpi.host;
    log.dir = spec.log_dir;
    log.file_stem = spec.name + "-" + broadcast_from_root(job_id(), mpi);
    log.console = mpi.rank == 0;
    log.level = a.verbose ? LogLevel::debug : LogLevel::info;
    init_logging(log);
    if (mpi.rank == 0) log_info("qsweep run {} on {} rank(s)", a.job, mpi.size);
    code = run_sweep(spec, a.options, mpi);
  } catch (const std::exception& e) {
    // Outside any unit: nothing can go on, and ranks waiting for rank 0 would hang.
    if (mpi.rank == 0) std::cerr << "qsweep: error: " << e.what() << "\n";
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
  cmd->callback([a] {
    const int code = run(*a);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace qsweep::cli
