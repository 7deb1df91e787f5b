// `qsweep plan JOB.yaml [--store FILE]`: validates the job and every input its units read (model
// headers, tokenizer, CoQA file), expands it, and shows what a run would do given what the store
// already holds. Loads no weights and takes no lock.
#include "cli.h"
#include "qsweep/eval/coqa.h"
#include "qsweep/store/store.h"
#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/sweep/validate_inputs.h"
#include "qsweep/util/error.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <memory>

namespace qsweep::cli {
namespace {

struct PlanOptions {
  std::string job;
  std::string store;
};

void print_settings(const SweepSpec& spec, size_t stories) {
  fmt::print("sweep      {} ({}, spec sha256 {})\n", spec.name, spec.path,
             spec.spec_hash.substr(0, 12));
  fmt::print("model      {}\ntokenizer  {}\ndevice     {}\n", spec.model, spec.tokenizer,
             spec.device);
  const EvalSpec& e = spec.evaluation;
  if (e.enabled)
    fmt::print("evaluation {} ({} stories), mode {}, limit {}, shard_size {}, batch_size {}, "
               "max_new_tokens {}\n",
               e.coqa, stories, coqa_mode_name(e.mode), e.limit ? std::to_string(*e.limit) : "none",
               e.shard_size, e.options.generation.batch_size, e.options.generation.max_new_tokens);
  const BenchOptions& b = spec.benchmarks.options;
  if (spec.benchmarks.enabled)
    fmt::print("benchmarks prefill {} tokens, decode {} tokens, throughput prompt {} tokens, "
               "batch sizes {}, warmup {}, repeats {}\n",
               b.prefill_tokens, b.decode_tokens, b.throughput_prompt_tokens,
               fmt::join(b.batch_sizes, ","), b.warmup, b.repeats);
  fmt::print("\nconfigs ({}, baseline {}):\n", spec.configs.size(), spec.baseline);
  for (const PrepConfig& c : spec.configs) {
    std::string keys;
    for (const auto& [key, value] : config_key_values(c)) keys += key + "=" + value + " ";
    fmt::print("  {:<16} {:<20} {}\n", c.name, keys, c.origin);
  }
}

// `plan` often runs on a login node without the job's GPUs, so a device this machine lacks is
// said, not refused; `run` refuses it on the node that lacks it.
void print_device(const SweepSpec& spec) {
  try {
    fmt::print("device     here: {}\n", validate_device(spec, 0));
  } catch (const Error& e) {
    fmt::print("device     not on this machine: {} (`qsweep run` refuses it where it is missing)\n",
               e.what());
  }
}

// The store's units by key, or none when there is no store yet or it cannot be resumed (then
// `resumable` is cleared).
std::map<std::string, UnitRecord> stored_units(const SweepSpec& spec, const std::string& path,
                                               bool& resumable) {
  std::map<std::string, UnitRecord> units;
  if (!std::filesystem::exists(path)) {
    fmt::print("\nstore      {} (does not exist yet)\n", path);
    return units;
  }
  const Results stored = read_store(path);
  const std::string reason = resume_incompatibility(stored, spec, results_fingerprint(spec));
  if (!reason.empty()) {
    fmt::print("\nstore      {} CANNOT be resumed by this job: {}\n", path, reason);
    resumable = false;
    return units;
  }
  fmt::print("\nstore      {} (resumable, updated {})\n", path,
             stored.provenance.count("updated_at") ? stored.provenance.at("updated_at") : "?");
  for (const UnitRecord& u : stored.units) units[u.key] = u;
  return units;
}

void print_units(const std::vector<WorkUnit>& units,
                 const std::map<std::string, UnitRecord>& stored) {
  std::map<UnitStatus, size_t> totals;
  fmt::print("\nunits ({}):\n", units.size());
  for (const WorkUnit& w : units) {
    const auto it = stored.find(w.key);
    const UnitStatus status = it == stored.end() ? UnitStatus::todo : it->second.status;
    ++totals[status];
    const std::string range =
        w.kind == UnitKind::coqa ? fmt::format("stories {}-{}", w.begin, w.end - 1) : "";
    std::string ran;
    if (status != UnitStatus::todo)
      ran = fmt::format("rank {} on {}, {:.1f} s", it->second.rank, it->second.host,
                        it->second.seconds);
    std::string line = fmt::format("  {:<28} {:<16} {:<7} {}", w.key, range,
                                   unit_status_name(status), ran);
    line.erase(line.find_last_not_of(' ') + 1);
    fmt::print("{}\n", line);
  }
  fmt::print("\ndone {}, failed {}, to do {}\n", totals[UnitStatus::done],
             totals[UnitStatus::failed], totals[UnitStatus::todo]);
}

// The plan is printed in full either way; a store the job cannot resume makes it exit 2, as
// `qsweep run` would refuse it.
int run_plan(const PlanOptions& options) {
  const SweepSpec spec = load_sweep_spec(options.job);
  validate_sweep_inputs(spec);
  const size_t stories = spec.evaluation.enabled ? load_coqa(spec.evaluation.coqa).stories.size() : 0;
  const std::vector<WorkUnit> units = expand_units(spec, stories);
  print_settings(spec, stories);
  print_device(spec);
  bool resumable = true;
  print_units(units, stored_units(spec, options.store.empty() ? spec.store : options.store,
                                  resumable));
  return resumable ? 0 : 2;
}

}  // namespace

void add_plan(CLI::App& app) {
  auto options = std::make_shared<PlanOptions>();
  CLI::App* plan = app.add_subcommand(
      "plan", "Validate a job file and list its configs, work units and what the store holds");
  plan->add_option("job", options->job, "sweep job file (YAML)")->required()->check(
      CLI::ExistingFile);
  plan->add_option("--store", options->store, "results store to compare with (default: the job's)");
  plan->callback([options] {
    if (const int code = run_plan(*options)) throw CLI::RuntimeError(code);
  });
}

}  // namespace qsweep::cli
