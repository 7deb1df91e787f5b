#include "provenance.h"

#include "file_hashes.h"
#include "qsweep/bench/device.h"
#include "qsweep/util/text.h"
#include "qsweep_version.h"

#include <fmt/format.h>

#include <filesystem>
#include <set>

namespace qsweep {

void record_provenance(Store& store, const SweepSpec& spec, const MpiContext& mpi) {
  set_provenance(store, "qsweep_git", QSWEEP_GIT_HASH);
  set_provenance(store, "runtime", runtime_versions());
  set_provenance(store, "mpi_size", std::to_string(mpi.size));
  set_provenance(store, "coordinator_host", mpi.host);
  set_provenance(store, "seed", std::to_string(spec.seed));
  set_provenance(store, "started_at", store.results.provenance["updated_at"]);
  if (spec.evaluation.enabled) set_provenance(store, "coqa_sha256", sha256_file(spec.evaluation.coqa));
}

std::string model_hashes(const SweepSpec& spec) try {
  std::set<std::string> dirs = {spec.model};
  for (const auto& c : spec.configs)
    if (!c.model.empty()) dirs.insert(c.model);
  std::string lines;
  for (const auto& dir : dirs)
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name == "config.json" || name.find(".safetensors") != std::string::npos)
        lines += fmt::format("{} {}\n", entry.path().string(),
                             cached_sha256(entry.path().string(), hash_cache_of(cache_dir_of(spec, ""))));
    }
  return lines;
} catch (const std::exception& e) {
  return std::string("not available: ") + e.what();
}

}  // namespace qsweep
