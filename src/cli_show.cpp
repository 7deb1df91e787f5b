// `qsweep show STORE.h5`: what a store holds, readable at a glance, while a sweep runs or after.
#include "cli.h"
#include "qsweep/store.h"

#include <fmt/format.h>

#include <memory>

namespace qsweep::cli {
namespace {

std::string mean_cell(const MeanSummary& m) {
  return fmt::format("{:.3f} [{:.3f}, {:.3f}]", m.mean, m.bca95.lo, m.bca95.hi);
}

std::string delta_cell(const std::optional<PairedComparison>& c) {
  if (!c) return "-";
  return fmt::format("{:+.3f} [{:+.3f}, {:+.3f}] p={:.3f}", c->mean_delta, c->bca95.lo,
                     c->bca95.hi, c->p_value);
}

std::string bytes_cell(int64_t bytes) {
  if (bytes < 0) return "-";
  const double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);
  return mib >= 1024 ? fmt::format("{:.2f} GiB", mib / 1024) : fmt::format("{:.1f} MiB", mib);
}

void print_table(const Results& results) {
  const auto baseline = results.provenance.find("baseline");
  const std::string against = baseline == results.provenance.end() ? "baseline" : baseline->second;
  fmt::print("{:<16} {:>7}  {:<24} {:<24} {:<34} {:<34} {:>10} {:>14} {}\n", "config", "samples",
             "EM [95% BCa]", "F1 [95% BCa]", "dEM vs " + against + " [95%]",
             "dF1 vs " + against + " [95%]", "size", "decode ms/tok", "units done/failed/todo");
  for (const SummaryRow& row : summarize(results)) {
    const auto& m = row.metrics;
    fmt::print("{:<16} {:>7}  {:<24} {:<24} {:<34} {:<34} {:>10} {:>14} {}/{}/{}\n", row.config,
               row.samples, m ? mean_cell(m->em) : "-", m ? mean_cell(m->f1) : "-",
               m ? delta_cell(m->em_vs_baseline) : "-", m ? delta_cell(m->f1_vs_baseline) : "-",
               bytes_cell(row.model_bytes),
               row.decode_ms_per_token ? fmt::format("{:.2f}", row.decode_ms_per_token->median)
                                       : "-",
               row.units_done, row.units_failed, row.units_todo);
  }
}

void print_problems(const Results& results) {
  if (!results.errors.empty()) {
    fmt::print("\nerrors ({}):\n", results.errors.size());
    for (const UnitError& e : results.errors)
      fmt::print("  {} (rank {} on {}): {}\n", e.unit, e.rank, e.host, e.message);
  }
  std::vector<std::string> missing;
  for (const UnitRecord& u : results.units)
    if (u.status != UnitStatus::done)
      missing.push_back(fmt::format("{} ({})", u.key, unit_status_name(u.status)));
  if (missing.empty()) {
    fmt::print("\nall {} units done\n", results.units.size());
    return;
  }
  fmt::print("\nmissing units ({} of {}):\n", missing.size(), results.units.size());
  for (const auto& m : missing) fmt::print("  {}\n", m);
}

void run_show(const std::string& path) {
  const Results results = read_store(path);
  const auto get = [&](const std::string& key) {
    const auto it = results.provenance.find(key);
    return it == results.provenance.end() ? std::string("?") : it->second;
  };
  fmt::print("store {}: sweep '{}', created {}, updated {}, {}\n\n", path, get("name"),
             get("created_at"), get("updated_at"), get("qsweep_version"));
  print_table(results);
  print_problems(results);
}

}  // namespace

void add_show(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* show = app.add_subcommand("show", "Print a results store: metrics, errors, missing units");
  show->add_option("store", *path, "results store (.h5)")->required()->check(CLI::ExistingFile);
  show->callback([path] { run_show(*path); });
}

}  // namespace qsweep::cli
