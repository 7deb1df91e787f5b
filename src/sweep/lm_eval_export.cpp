#include "lm_eval_export.h"

#include "qsweep/eval/coqa.h"
#include "qsweep/eval/lm_eval_json.h"
#include "qsweep/util/text.h"

#include <filesystem>

namespace qsweep {

void write_lm_eval_files(const Store& store, const SweepSpec& spec) {
  const std::filesystem::path dir = std::filesystem::path(store.path).replace_extension(".lm_eval");
  BootstrapOptions bootstrap;
  bootstrap.resamples = spec.evaluation.bootstrap_resamples;
  bootstrap.seed = spec.seed;
  // lm-eval's n-samples.original counts the data set, effective what was evaluated (--limit).
  size_t in_data_set = 0;
  if (spec.evaluation.enabled)
    in_data_set = build_samples(load_coqa(spec.evaluation.coqa).stories, spec.evaluation.mode).size();
  for (const ConfigResults& c : store.results.configs) {
    if (!c.metrics) continue;
    std::filesystem::create_directories(dir);
    const std::vector<SampleRecord> samples = all_samples(c);
    const nlohmann::json config = {{"model", spec.model}, {"qsweep_config", c.name},
                                   {"fingerprint", c.fingerprint}, {"store", store.path},
                                   {"coqa_file", spec.evaluation.coqa},
                                   {"batch_size", spec.evaluation.options.generation.batch_size},
                                   {"add_bos", spec.evaluation.options.add_bos}};
    const SampleCounts counts{in_data_set, samples.size()};
    write_file_atomic((dir / (c.name + ".json")).string(),
                      lm_eval_results_json(*c.metrics, counts, config, bootstrap).dump(2) + "\n");
  }
}

}  // namespace qsweep
