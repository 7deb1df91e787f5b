// The configs x metrics table of a store in four formats. One list of fields (row_json) drives
// the machine formats (JSON, CSV); one list of columns drives the human ones (text, Markdown).
#include "qsweep/store/store.h"

#include "qsweep/util/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>

namespace qsweep {
namespace {

using nlohmann::ordered_json;

constexpr size_t kConfigWidth = 14;  // longer names are cut in the default (120-column) table
constexpr double kMiB = 1024.0 * 1024.0;

ordered_json value_or_null(const std::optional<double>& v) {
  return v && !std::isnan(*v) ? ordered_json(*v) : ordered_json(nullptr);
}

void add_summary(ordered_json& j, const std::string& name, const MeanSummary& s) {
  j[name] = s.mean;
  j[name + "_stderr"] = value_or_null(s.stderr_);
  j[name + "_lo"] = value_or_null(s.bca95.lo);
  j[name + "_hi"] = value_or_null(s.bca95.hi);
}

void add_delta(ordered_json& j, const std::string& name, const std::optional<PairedComparison>& c) {
  j[name + "_delta"] = c ? ordered_json(c->mean_delta) : ordered_json(nullptr);
  j[name + "_delta_lo"] = c ? value_or_null(c->bca95.lo) : ordered_json(nullptr);
  j[name + "_delta_hi"] = c ? value_or_null(c->bca95.hi) : ordered_json(nullptr);
  j[name + "_p"] = c ? value_or_null(c->p_value) : ordered_json(nullptr);
}

ordered_json row_json(const SummaryRow& row, const std::string& baseline) {
  ordered_json j = {{"config", row.config}, {"is_baseline", row.config == baseline},
                    {"samples", row.samples}};
  const bool compared = row.metrics && row.config != baseline;
  for (const char* metric : {"em", "f1"}) {
    const MeanSummary* s = !row.metrics ? nullptr : metric[0] == 'e' ? &row.metrics->em : &row.metrics->f1;
    if (s) add_summary(j, metric, *s);
    else for (const char* k : {"", "_stderr", "_lo", "_hi"}) j[std::string(metric) + k] = nullptr;
  }
  add_delta(j, "em", compared ? row.metrics->em_vs_baseline : std::nullopt);
  add_delta(j, "f1", compared ? row.metrics->f1_vs_baseline : std::nullopt);
  j["model_bytes"] = row.model_bytes >= 0 ? ordered_json(row.model_bytes) : ordered_json(nullptr);
  j["bits_per_weight"] = value_or_null(row.bits_per_weight);
  j["prefill_ms_median"] = row.prefill_ms ? ordered_json(row.prefill_ms->median) : ordered_json(nullptr);
  j["decode_ms_per_token_b1_median"] =
      row.decode_ms_per_token ? ordered_json(row.decode_ms_per_token->median) : ordered_json(nullptr);
  j["perplexity"] = value_or_null(row.perplexity);
  j["kl_vs_baseline"] = value_or_null(row.kl_vs_baseline);
  j["units_done"] = row.units_done;
  j["units_failed"] = row.units_failed;
  j["units_todo"] = row.units_todo;
  return j;
}

std::string csv_field(const ordered_json& v) {
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  if (!v.is_string()) return v.dump();
  const std::string s = v.get<std::string>();
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// Python's "{:.Ng}" without dropping trailing zeros: the same significant digits on every row.
std::string significant(double v, int digits) {
  if (std::isnan(v)) return "-";
  if (v == 0) return fmt::format("{:.{}f}", 0.0, digits - 1);
  const int exponent = static_cast<int>(std::floor(std::log10(std::fabs(v))));
  return fmt::format("{:.{}f}", v, std::max(0, digits - 1 - exponent));
}

std::string p_cell(double p) {
  if (std::isnan(p)) return "p=-";
  return p < 0.001 ? "p<0.001" : fmt::format("p={:.3f}", p);
}

std::string interval(const Interval& i, const char* sign) {
  return fmt::format(fmt::runtime(std::string("[{:") + sign + ".3f},{:" + sign + ".3f}]"), i.lo, i.hi);
}

// Where a column shows: in both tables, or only in the default (120 columns) or the wide one.
enum class Shown { both, narrow, wide };

struct Column {
  std::string header;
  Shown shown = Shown::both;
  bool left = false;  // aligned left (names), else right (numbers)
  std::function<std::string(const SummaryRow&)> cell;
};

struct TableContext {
  std::string baseline;
  bool size_in_gib = false;  // one unit for the whole size column
};

std::vector<Column> columns(const TableContext& t) {
  const auto metrics = [](const SummaryRow& r, auto f) { return r.metrics ? f(*r.metrics) : std::string("-"); };
  const auto delta = [&t](const SummaryRow& r, bool em, bool with_interval) {
    if (r.config == t.baseline) return std::string("baseline");
    if (!r.metrics) return std::string("-");
    const auto& c = em ? r.metrics->em_vs_baseline : r.metrics->f1_vs_baseline;
    if (!c) return std::string("-");
    return fmt::format("{:+.3f}{} {}", c->mean_delta, with_interval ? " " + interval(c->bca95, "+") : "",
                       p_cell(c->p_value));
  };
  return {
      {"config", Shown::both, true, [](const SummaryRow& r) { return r.config; }},
      {"n", Shown::both, false, [](const SummaryRow& r) { return std::to_string(r.samples); }},
      {"EM", Shown::narrow, false, [=](const SummaryRow& r) { return metrics(r, [](const ConfigMetrics& m) {
         return fmt::format("{:.3f}", m.em.mean); }); }},
      {"EM [95% BCa]", Shown::wide, false, [=](const SummaryRow& r) { return metrics(r, [](const ConfigMetrics& m) {
         return fmt::format("{:.3f} {}", m.em.mean, interval(m.em.bca95, "")); }); }},
      {"F1 [95% BCa]", Shown::both, false, [=](const SummaryRow& r) { return metrics(r, [](const ConfigMetrics& m) {
         return fmt::format("{:.3f} {}", m.f1.mean, interval(m.f1.bca95, "")); }); }},
      {"dEM", Shown::narrow, false, [=](const SummaryRow& r) {
         const std::string d = delta(r, true, false);
         return d.substr(0, d.find(' ')); }},
      {"dEM [95%] p", Shown::wide, false, [=](const SummaryRow& r) { return delta(r, true, true); }},
      {"dF1 p", Shown::narrow, false, [=](const SummaryRow& r) { return delta(r, false, false); }},
      {"dF1 [95%] p", Shown::wide, false, [=](const SummaryRow& r) { return delta(r, false, true); }},
      {t.size_in_gib ? "GiB" : "MiB", Shown::both, false, [&t](const SummaryRow& r) {
         if (r.model_bytes < 0) return std::string("-");
         const double mib = static_cast<double>(r.model_bytes) / kMiB;
         return t.size_in_gib ? fmt::format("{:.2f}", mib / 1024) : fmt::format("{:.1f}", mib); }},
      {"bits/w", Shown::both, false, [](const SummaryRow& r) {
         return r.bits_per_weight ? fmt::format("{:.2f}", *r.bits_per_weight) : "-"; }},
      {"prefill ms", Shown::wide, false, [](const SummaryRow& r) {
         return r.prefill_ms ? significant(r.prefill_ms->median, 3) : "-"; }},
      {"b1 ms/tok", Shown::both, false, [](const SummaryRow& r) {
         return r.decode_ms_per_token ? significant(r.decode_ms_per_token->median, 3) : "-"; }},
      {"ppl", Shown::both, false, [](const SummaryRow& r) { return r.perplexity ? significant(*r.perplexity, 4) : "-"; }},
      {"KL", Shown::both, false, [](const SummaryRow& r) {
         return r.kl_vs_baseline ? significant(*r.kl_vs_baseline, 3) : "-"; }},
      {"units", Shown::narrow, false, [](const SummaryRow& r) {
         return fmt::format("{}/{}", r.units_done, r.units_done + r.units_failed + r.units_todo); }},
      {"done/failed/todo", Shown::wide, false, [](const SummaryRow& r) {
         return fmt::format("{}/{}/{}", r.units_done, r.units_failed, r.units_todo); }},
  };
}

std::string cut(const std::string& name, size_t width) {
  return name.size() <= width ? name : name.substr(0, width - 1) + "~";
}

// The text table, or Markdown (the wide table's cells, pipes between).
std::string human_table(const std::vector<SummaryRow>& rows, const TableContext& t, bool wide,
                        bool markdown) {
  wide = wide || markdown;
  std::vector<Column> shown;
  for (Column& c : columns(t))
    if (c.shown == Shown::both || c.shown == (wide ? Shown::wide : Shown::narrow))
      shown.push_back(std::move(c));
  std::vector<std::vector<std::string>> cells;
  for (const SummaryRow& r : rows) {
    cells.emplace_back();
    for (const Column& c : shown) cells.back().push_back(c.cell(r));
    if (!wide && !markdown) cells.back()[0] = cut(cells.back()[0], kConfigWidth);
  }
  std::vector<size_t> width;
  for (size_t k = 0; k < shown.size(); ++k) {
    width.push_back(shown[k].header.size());
    for (const auto& line : cells) width[k] = std::max(width[k], line[k].size());
  }
  const auto format_line = [&](const std::vector<std::string>& line) {
    std::string out = markdown ? "|" : "";
    for (size_t k = 0; k < line.size(); ++k) {
      const std::string cell = shown[k].left ? fmt::format("{:<{}}", line[k], width[k])
                                             : fmt::format("{:>{}}", line[k], width[k]);
      out += markdown ? " " + cell + " |" : (k ? " " : "") + cell;
    }
    while (!markdown && !out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::vector<std::string> headers;
  for (const Column& c : shown) headers.push_back(c.header);
  std::string out = format_line(headers);
  if (markdown) {
    out += "|";
    for (size_t k = 0; k < shown.size(); ++k)
      out += shown[k].left ? fmt::format(" :{} |", std::string(width[k] - 1, '-'))
                           : fmt::format(" {}: |", std::string(width[k] - 1, '-'));
    out += "\n";
  }
  for (const auto& line : cells) out += format_line(line);
  out += fmt::format(
      "\nEM/F1: mean [95% BCa interval]; d: paired difference from {} (two-sided bootstrap p); "
      "size: weights in memory;\nb1 ms/tok: decode at batch 1, median of the timed runs; ppl: "
      "perplexity of the text; KL: nats/token from {}\n", t.baseline, t.baseline);
  return out;
}

}  // namespace

std::optional<TableFormat> parse_table_format(std::string_view name) {
  if (name == "text") return TableFormat::text;
  if (name == "md") return TableFormat::markdown;
  if (name == "csv") return TableFormat::csv;
  if (name == "json") return TableFormat::json;
  return std::nullopt;
}

std::string format_summary_table(const Results& results, TableFormat format, bool wide) {
  const auto baseline = results.provenance.find("baseline");
  TableContext t;
  t.baseline = baseline == results.provenance.end() ? "baseline" : baseline->second;
  const std::vector<SummaryRow> rows = summarize(results);
  for (const SummaryRow& r : rows) t.size_in_gib |= static_cast<double>(r.model_bytes) >= 1024 * kMiB;
  switch (format) {
    case TableFormat::text: return human_table(rows, t, wide, false);
    case TableFormat::markdown: return human_table(rows, t, wide, true);
    case TableFormat::json: {
      ordered_json all = ordered_json::array();
      for (const SummaryRow& r : rows) all.push_back(row_json(r, t.baseline));
      return all.dump(2) + "\n";
    }
    case TableFormat::csv: {
      std::string out;
      for (size_t i = 0; i < rows.size(); ++i) {
        const ordered_json j = row_json(rows[i], t.baseline);
        std::string header, line;
        bool first = true;
        for (const auto& [key, value] : j.items()) {
          header += (first ? "" : ",") + key;
          line += (first ? "" : ",") + csv_field(value);
          first = false;
        }
        if (i == 0) out += header + "\n";
        out += line + "\n";
      }
      return out;
    }
  }
  fail("unknown table format");
}

}  // namespace qsweep
