// The human-readable report of a store: the configs x metrics table, errors and missing units.
// `qsweep show` prints it, and so does rank 0 at the end of `qsweep run`.
#include "qsweep/store/store.h"

#include "qsweep/eval/scoring.h"

#include <fmt/format.h>

namespace qsweep {
namespace {

// In the official all-turns mode (recorded in the results fingerprint) the official script's
// per-domain table is the figure CoQA papers report.
void print_domains(const Results& results, std::string& out) {
  const auto fingerprint = results.provenance.find("results_fingerprint");
  if (fingerprint == results.provenance.end() ||
      fingerprint->second.find("evaluation.mode=official") == std::string::npos)
    return;
  for (const ConfigResults& c : results.configs) {
    const std::vector<SampleRecord> samples = all_samples(c);
    if (samples.empty()) continue;
    out += fmt::format("\nofficial CoQA scores, {} ({} turns):\n", c.name, samples.size());
    for (const DomainScore& d : official_domain_scores(samples))
      if (d.turns > 0)
        out += fmt::format("  {:<18} turns {:>5}  EM {:5.1f}  F1 {:5.1f}\n", d.name, d.turns,
                           official_percent(d.em), official_percent(d.f1));
  }
}

void print_problems(const Results& results, std::string& out) {
  if (!results.errors.empty()) {
    out += fmt::format("\nerrors ({}):\n", results.errors.size());
    for (const UnitError& e : results.errors)
      out += fmt::format("  {} (rank {} on {}): {}\n", e.unit, e.rank, e.host, e.message);
  }
  std::vector<std::string> missing;
  for (const UnitRecord& u : results.units)
    if (u.status != UnitStatus::done)
      missing.push_back(fmt::format("{} ({})", u.key, unit_status_name(u.status)));
  if (missing.empty()) {
    out += fmt::format("\nall {} units done\n", results.units.size());
    return;
  }
  out += fmt::format("\nmissing units ({} of {}):\n", missing.size(), results.units.size());
  for (const auto& m : missing) out += fmt::format("  {}\n", m);
}

}  // namespace

std::string format_store_report(const std::string& path, const Results& results, bool wide) {
  const auto get = [&](const std::string& key) {
    const auto it = results.provenance.find(key);
    return it == results.provenance.end() ? std::string("?") : it->second;
  };
  std::string out = fmt::format("store {}\nsweep '{}', created {}, updated {}, {}\n\n", path,
                                get("name"), get("created_at"), get("updated_at"),
                                get("qsweep_version"));
  out += format_summary_table(results, TableFormat::text, wide);
  print_domains(results, out);
  print_problems(results, out);
  return out;
}

}  // namespace qsweep
