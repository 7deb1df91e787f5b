// The human-readable report of a store: the configs x metrics table, errors and missing units.
// `qsweep show` prints it, and so does rank 0 at the end of `qsweep run`.
#include "qsweep/store/store.h"

#include "qsweep/eval/scoring.h"

#include <fmt/format.h>

namespace qsweep {
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

void print_table(const Results& results, std::string& out) {
  const auto baseline = results.provenance.find("baseline");
  const std::string against = baseline == results.provenance.end() ? "baseline" : baseline->second;
  out += fmt::format("{:<16} {:>7}  {:<24} {:<24} {:<34} {:<34} {:>10} {:>6} {:>14} {:>9} {:>9} {}\n", "config", "samples",
             "EM [95% BCa]", "F1 [95% BCa]", "dEM vs " + against + " [95%]",
             "dF1 vs " + against + " [95%]", "size", "bits/w", "decode ms/tok", "ppl", "KL", "units done/failed/todo");
  for (const SummaryRow& row : summarize(results)) {
    const auto& m = row.metrics;
    out += fmt::format("{:<16} {:>7}  {:<24} {:<24} {:<34} {:<34} {:>10} {:>6} {:>14} {:>9} {:>9} {}/{}/{}\n", row.config,
               row.samples, m ? mean_cell(m->em) : "-", m ? mean_cell(m->f1) : "-",
               m ? delta_cell(m->em_vs_baseline) : "-", m ? delta_cell(m->f1_vs_baseline) : "-",
               bytes_cell(row.model_bytes),
               row.bits_per_weight ? fmt::format("{:.2f}", *row.bits_per_weight) : "-",
               row.decode_ms_per_token ? fmt::format("{:.2f}", row.decode_ms_per_token->median)
                                       : "-",
               row.perplexity ? fmt::format("{:.4g}", *row.perplexity) : "-",
               row.kl_vs_baseline ? fmt::format("{:.3g}", *row.kl_vs_baseline) : "-",
               row.units_done, row.units_failed, row.units_todo);
  }
}

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

std::string format_store_report(const std::string& path, const Results& results) {
  const auto get = [&](const std::string& key) {
    const auto it = results.provenance.find(key);
    return it == results.provenance.end() ? std::string("?") : it->second;
  };
  std::string out = fmt::format("store {}: sweep '{}', created {}, updated {}, {}\n\n", path,
                                get("name"), get("created_at"), get("updated_at"),
                                get("qsweep_version"));
  print_table(results, out);
  print_domains(results, out);
  print_problems(results, out);
  return out;
}

}  // namespace qsweep
