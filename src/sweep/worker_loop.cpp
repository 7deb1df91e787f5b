#include "worker_loop.h"

#include "qsweep/sweep/protocol.h"
#include "qsweep/util/log.h"

#include <optional>

namespace qsweep {

void worker_loop(const SweepSpec& spec, const RankInfo& rank,
                 const std::function<std::string(const std::string&)>& exchange) {
  std::optional<UnitRunner> runner;
  WorkerReport report;
  try {
    runner.emplace(spec, rank);
    report.device = runner->device();
  } catch (const std::exception& e) {
    log_error("rank {} cannot start: {}", rank.rank, e.what());
    report.leaving = true;
    report.failure = e.what();
  }
  for (;;) {
    const Assignment assignment = decode_assignment(exchange(encode_report(report)));
    if (!assignment.unit || !runner) return;
    const UnitResult result = runner->run(*assignment.unit);
    if (result.error) log_warning("{} failed: {}", result.key, result.error->message);
    report = WorkerReport{result, runner->prepared_config(), runner->broken(), "", ""};
  }
}

}  // namespace qsweep
