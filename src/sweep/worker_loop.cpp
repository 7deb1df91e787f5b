#include "worker_loop.h"

#include "qsweep/sweep/protocol.h"
#include "qsweep/util/log.h"

#include <chrono>
#include <optional>

namespace qsweep {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

void worker_loop(const SweepSpec& spec, const RankInfo& rank,
                 const std::function<std::string(const std::string&)>& exchange) {
  std::optional<UnitRunner> runner;
  WorkerReport report;
  const Clock::time_point begun = Clock::now();
  try {
    runner.emplace(spec, rank);
    report.device = runner->device();
  } catch (const std::exception& e) {
    log_error("rank {} cannot start: {}", rank.rank, e.what());
    report.leaving = true;
    report.failure = e.what();
  }
  report.startup_seconds = seconds_since(begun);
  for (;;) {
    const Clock::time_point asked = Clock::now();
    const Assignment assignment = decode_assignment(exchange(encode_report(report)));
    const double waited = seconds_since(asked);
    if (!assignment.unit || !runner) return;
    const UnitResult result = runner->run(*assignment.unit);
    if (result.error) log_warning("{} failed: {}", result.key, result.error->message);
    report = WorkerReport{result, runner->prepared_config(), runner->broken(), "", "", 0, waited};
  }
}

}  // namespace qsweep
