#include "lm_eval_export.h"

#include "qsweep/eval/coqa.h"
#include "qsweep/eval/lm_eval_json.h"
#include "qsweep/util/log.h"
#include "qsweep/util/text.h"
#include "qsweep_version.h"

#include <ctime>
#include <filesystem>

namespace qsweep {
namespace {

double unix_seconds(const std::string& iso_utc) {
  std::tm tm{};
  if (!strptime(iso_utc.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return 0;
  return static_cast<double>(timegm(&tm));
}

// lm-eval's model_args, from the keys that define the config: what tells configs apart.
std::string model_args(const std::string& model, const PrepConfig& config) {
  std::string args = "pretrained=" + model;
  for (const auto& [key, value] : config_key_values(config))
    if (key != "model") args += "," + key + "=" + value;
  return args;
}

// The config's CoQA units ran from the first start to the last finish.
void set_times(LmEvalRun& run, const Results& results, const std::string& config) {
  for (const UnitRecord& u : results.units) {
    if (u.config != config || u.kind != UnitKind::coqa || u.status != UnitStatus::done) continue;
    const double end = unix_seconds(u.finished_at);
    if (run.start_time == 0 || end - u.seconds < run.start_time) run.start_time = end - u.seconds;
    run.end_time = std::max(run.end_time, end);
  }
}

// A rerun rewrites a config's files, so the earlier ones (dated differently) would read as a
// second evaluation of the same model: they go first.
void remove_earlier_output(const std::filesystem::path& dir) {
  if (!std::filesystem::exists(dir)) return;
  for (const auto& model_dir : std::filesystem::directory_iterator(dir)) {
    if (!model_dir.is_directory()) continue;
    for (const auto& f : std::filesystem::directory_iterator(model_dir.path())) {
      const std::string name = f.path().filename().string();
      if (name.rfind("results_", 0) == 0 || name.rfind("samples_", 0) == 0)
        std::filesystem::remove(f.path());
    }
  }
}

}  // namespace

void write_lm_eval_files(const Store& store, const SweepSpec& spec) {
  if (!spec.evaluation.enabled) return;
  const std::filesystem::path dir = std::filesystem::path(store.path).replace_extension(".lm_eval");
  const std::string text = read_file(spec.evaluation.coqa);
  const std::vector<CoqaSample> samples =
      build_samples(parse_coqa(text, spec.evaluation.coqa), spec.evaluation.mode);
  const std::vector<nlohmann::ordered_json> docs = lm_eval_coqa_docs(text, spec.evaluation.coqa);
  for (const PrepConfig& config : spec.configs) {
    const ConfigResults* c = find_config(store.results, config.name);
    if (c == nullptr || !c->metrics) continue;
    const std::vector<SampleRecord> records = all_samples(*c);
    LmEvalRun run;
    run.model_name = model_dir_of(spec, config);
    run.model_args = model_args(run.model_name, config);
    run.mode = spec.evaluation.mode;
    run.coqa_file = spec.evaluation.coqa;
    run.batch_size = spec.evaluation.options.generation.batch_size;
    run.device = spec.device;
    run.limit = spec.evaluation.limit;
    run.max_gen_toks = spec.evaluation.options.generation.max_new_tokens;
    run.until = spec.evaluation.options.generation.stop;
    run.bootstrap = {static_cast<size_t>(spec.evaluation.bootstrap_resamples), spec.seed};
    run.git_hash = QSWEEP_GIT_HASH;
    run.counts = {samples.size(), records.size()};
    set_times(run, store.results, config.name);
    remove_earlier_output(dir / config.name);
    const std::string path = write_lm_eval_output((dir / config.name).string(), run, *c->metrics,
                                                  docs, samples, records);
    log_debug("{}: lm-eval results in {}", config.name, path);
  }
  log_info("lm-eval results and samples of each config under {}/<config>/", dir.string());
}

}  // namespace qsweep
