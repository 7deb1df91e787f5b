#include "progress.h"

#include "qsweep/util/log.h"

namespace qsweep {

void Progress::log(const UnitResult& r) {
  ++done;
  if (r.error) ++failed;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double eta = done ? elapsed / done * (total - done) : 0;
  log_info("[{}/{}] {} {} on rank {} in {:.1f} s{} | elapsed {:.0f} s, ETA {:.0f} s", done, total,
           r.key, r.error ? "FAILED" : "done", r.rank, r.seconds,
           failed ? fmt::format(" | {} failed", failed) : "", elapsed, eta);
}

}  // namespace qsweep
