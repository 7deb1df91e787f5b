#include "progress.h"

#include "qsweep/util/log.h"

#include <cmath>

namespace qsweep {

double eta_seconds(const Progress& p) {
  double seconds = 0;
  size_t count = 0;
  for (const auto& [kind, m] : p.measured) seconds += m.first, count += m.second;
  if (count == 0) return -1;
  const double overall = seconds / count;
  double left = 0;
  for (const auto& [kind, n] : p.remaining) {
    const auto it = p.measured.find(kind);
    const double each = it != p.measured.end() && it->second.second > 0
                            ? it->second.first / it->second.second : overall;
    left += each * n;
  }
  return left / std::max(1, p.workers);
}

std::string format_duration(double seconds) {
  if (seconds < 0) return "?";
  const long s = std::lround(seconds);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}h{:02d}m{:02d}s", s / 3600, s % 3600 / 60, s % 60);
}

void Progress::log(const UnitResult& r, UnitKind kind, const ConfigResults* config) {
  ++done;
  if (r.error) ++failed;
  if (remaining[kind] > 0) --remaining[kind];
  measured[kind].first += r.seconds;
  ++measured[kind].second;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log_info("[{}/{}] {} {} on rank {} in {} | {} failed | elapsed {}, ETA {}", done, total, r.key,
           r.error ? "FAILED" : "done", r.rank, format_duration(r.seconds), failed,
           format_duration(elapsed), format_duration(eta_seconds(*this)));
  if (kind != UnitKind::coqa || config == nullptr || r.error) return;
  const std::vector<SampleRecord> samples = all_samples(*config);
  double em = 0, f1 = 0;
  for (const SampleRecord& s : samples) em += s.em, f1 += s.f1;
  if (!samples.empty())
    log_info("  {}: running mean EM {:.3f} F1 {:.3f} over {} samples", config->name,
             em / samples.size(), f1 / samples.size(), samples.size());
}

}  // namespace qsweep
