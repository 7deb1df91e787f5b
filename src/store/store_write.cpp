// Results -> HDF5, in the layout of docs/results-schema.md. The whole file is written anew each
// time (a few MB at most), into FILE.tmp and then renamed over FILE, so a reader or a killed
// writer only ever sees a complete file, and a full disk leaves the previous one.
#include "hdf5_io.h"
#include "qsweep/util/durable_file.h"
#include "qsweep/util/error.h"
#include "qsweep/eval/stats.h"
#include "qsweep/store/store.h"
#include "store_fields.h"
#include "store_layout.h"
#include "store_timing.h"

#include <cmath>
#include <limits>

namespace qsweep {
namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

void write_samples(const H5::Group& parent, const ConfigResults& c) {
  const H5::Group g = h5::group(parent, "samples");
  std::vector<std::string> unit;
  std::vector<SampleRecord> rows;
  for (const auto& [key, records] : c.samples) {
    for (const SampleRecord& r : records) {
      unit.push_back(key);
      rows.push_back(r);
    }
  }
  h5::write_strings(g, "unit", unit);
  write_table(g, rows);
}

// Metrics as one attribute per number or string, named by joining the field names along the
// path (results_fields.h): "em" + "_bca95" + "_lo". An absent optional writes nothing.
void write_attrs(const H5::Group& g, const std::string& name, double value) {
  h5::set_attr(g, name, value);
}
void write_attrs(const H5::Group& g, const std::string& name, size_t value) {
  h5::set_attr(g, name, static_cast<int64_t>(value));
}
void write_attrs(const H5::Group& g, const std::string& name, const std::string& value) {
  h5::set_attr(g, name, value);
}
template <typename Record>
std::enable_if_t<has_fields<Record>> write_attrs(const H5::Group& g, const std::string& prefix,
                                                 const Record& r);
template <typename T>
void write_attrs(const H5::Group& g, const std::string& name, const std::optional<T>& value) {
  if (value) write_attrs(g, name, *value);
}
template <typename Record>
std::enable_if_t<has_fields<Record>> write_attrs(const H5::Group& g, const std::string& prefix,
                                                 const Record& r) {
  for_each_field<Record>([&](const auto& field) {
    if (!is_group_name(field.name)) write_attrs(g, prefix + field.name, r.*field.member);
  });
}

void write_metrics(const H5::Group& parent, const ConfigResults& c) {
  const H5::Group g = h5::group(parent, "metrics");
  if (!c.metrics) return;
  write_attrs(g, "", *c.metrics);
  // Stores from before it was recorded have none: their metrics are recomputed on resume.
  if (!c.metrics_from.empty()) h5::set_attr(g, "derived_from", c.metrics_from);
}

// Raw samples as a column, and their statistics as attributes beside it for quick reading.
void write_bench_column(const H5::Group& g, const std::string& name,
                        const std::vector<double>& values) {
  h5::write_doubles(g, name, values);
  if (values.empty()) return;
  const SampleStats s = sample_stats(values);
  h5::set_attr(g, name + "_mean", s.mean);
  h5::set_attr(g, name + "_median", s.median);
  h5::set_attr(g, name + "_p90", s.p90);
  h5::set_attr(g, name + "_p99", s.p99);
  h5::set_attr(g, name + "_stdev", s.stdev);
  h5::set_attr(g, name + "_min", s.min);
  h5::set_attr(g, name + "_max", s.max);
}

// A benchmark's strings and byte counts are attributes, its sample lists columns. An empty
// string, a negative count and NaN are what a store read from an older layout never had: they
// stay absent.
void write_bench_field(const H5::Group& g, const std::string& name, const std::string& value) {
  if (!value.empty()) h5::set_attr(g, name, value);
}
void write_bench_field(const H5::Group& g, const std::string& name, int64_t value) {
  if (value >= 0) h5::set_attr(g, name, value);
}
void write_bench_field(const H5::Group& g, const std::string& name, double value) {
  if (!std::isnan(value)) h5::set_attr(g, name, value);
}
void write_bench_field(const H5::Group& g, const std::string& name,
                       const std::vector<double>& samples) {
  write_bench_column(g, name, samples);
}
// The throughput map: one column per batch size N, named throughput_b<N>.
void write_bench_field(const H5::Group& g, const std::string& /*name*/,
                       const std::map<int, std::vector<double>>& by_batch) {
  for (const auto& [batch, samples] : by_batch)
    write_bench_column(g, kThroughputPrefix + std::to_string(batch), samples);
}

void write_bench(const H5::Group& parent, const ConfigResults& c) {
  if (!c.bench) return;
  const H5::Group g = h5::group(parent, "bench");
  for_each_field<BenchRecord>([&](const auto& field) {
    if (!is_group_name(field.name)) write_bench_field(g, field.name, (*c.bench).*field.member);
  });
}

void write_sanity(const H5::Group& parent, const ConfigResults& c) {
  if (c.sanity.empty() && !c.perplexity) return;
  const H5::Group g = h5::group(parent, "sanity");
  write_table(g, c.sanity);
  if (c.perplexity) h5::set_attr(g, "perplexity", *c.perplexity);
  if (c.kl_vs_baseline) h5::set_attr(g, "kl_vs_baseline", *c.kl_vs_baseline);
  if (!c.kl_baseline.empty()) h5::set_attr(g, "kl_baseline", c.kl_baseline);
}

void write_preparations(const H5::Group& parent, const ConfigResults& c) {
  if (!c.preparations.empty()) write_table(h5::group(parent, "prepare"), c.preparations);
}

void write_configs(const H5::Group& root, const Results& r) {
  const H5::Group configs = h5::group(root, "configs");
  for (size_t i = 0; i < r.configs.size(); ++i) {
    const ConfigResults& c = r.configs[i];
    const H5::Group g = h5::group(configs, c.name);
    h5::set_attr(g, "index", static_cast<int64_t>(i));
    h5::set_attr(g, "fingerprint", c.fingerprint);
    write_samples(g, c);
    write_metrics(g, c);
    write_bench(g, c);
    write_sanity(g, c);
    write_preparations(g, c);
  }
}

void write_units(const H5::Group& root, const Results& r) {
  write_table(h5::group(root, "units"), r.units);
}

void write_errors(const H5::Group& root, const Results& r) {
  write_table(h5::group(root, "errors"), r.errors);
}

// Derived from the rest and never read back: one row per config for a quick pandas look.
void write_summary(const H5::Group& root, const Results& r) {
  const std::vector<SummaryRow> rows = summarize(r);
  std::vector<std::string> config;
  std::map<std::string, std::vector<double>> columns;
  auto put = [&](const std::string& name, double value) { columns[name].push_back(value); };
  for (const SummaryRow& row : rows) {
    config.push_back(row.config);
    put("samples", static_cast<double>(row.samples));
    const auto& m = row.metrics;
    for (const auto& [p, mean] : {std::pair{"em", m ? &m->em : nullptr},
                                  std::pair{"f1", m ? &m->f1 : nullptr}}) {
      put(std::string(p), mean ? mean->mean : kMissing);
      put(std::string(p) + "_bca95_lo", mean ? mean->bca95.lo : kMissing);
      put(std::string(p) + "_bca95_hi", mean ? mean->bca95.hi : kMissing);
    }
    for (const auto& [p, cmp] : {std::pair{"em_delta", m ? &m->em_vs_baseline : nullptr},
                                 std::pair{"f1_delta", m ? &m->f1_vs_baseline : nullptr}}) {
      const bool have = cmp && cmp->has_value();
      put(std::string(p), have ? (*cmp)->mean_delta : kMissing);
      put(std::string(p) + "_bca95_lo", have ? (*cmp)->bca95.lo : kMissing);
      put(std::string(p) + "_bca95_hi", have ? (*cmp)->bca95.hi : kMissing);
      put(std::string(p) + "_p", have ? (*cmp)->p_value : kMissing);
    }
    put("model_bytes", row.model_bytes >= 0 ? static_cast<double>(row.model_bytes) : kMissing);
    put("prefill_ms_median", row.prefill_ms ? row.prefill_ms->median : kMissing);
    put("decode_ms_per_token_median",
        row.decode_ms_per_token ? row.decode_ms_per_token->median : kMissing);
    put("units_done", static_cast<double>(row.units_done));
    put("units_failed", static_cast<double>(row.units_failed));
    put("units_todo", static_cast<double>(row.units_todo));
  }
  const H5::Group g = h5::group(root, "summary");
  h5::write_strings(g, "config", config);
  for (const auto& [name, values] : columns) h5::write_doubles(g, name, values);
}

void write_provenance(const H5::Group& root, const Results& r) {
  const H5::Group g = h5::group(root, "provenance");
  for (const auto& [key, value] : r.provenance) h5::set_attr(g, key, value);
}

}  // namespace

// HDF5 builds the file in memory (the core driver without a backing store) and hands back its
// image; the bytes then reach the disk through write_file_atomic, whose every call is checked.
// HDF5 writing straight to disk would meet a full disk deep inside its metadata cache, where a
// failed flush or close can go unreported and leave a file that only looks complete.
void write_store(const std::string& path, const Results& results) {
  H5::Exception::dontPrint();
  std::vector<char> image;
  try {
    H5::FileAccPropList access;
    access.setCore(1 << 20, false);
    H5::H5File file(path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, access);
    const H5::Group root = file.openGroup("/");
    write_provenance(root, results);
    write_configs(root, results);
    write_units(root, results);
    write_errors(root, results);
    write_summary(root, results);
    write_timing(root, results.timing);
    file.flush(H5F_SCOPE_GLOBAL);
    const ssize_t size = H5Fget_file_image(file.getId(), nullptr, 0);
    QSWEEP_CHECK(size > 0, "store '{}': H5Fget_file_image failed", path);
    image.resize(static_cast<size_t>(size));
    QSWEEP_CHECK(H5Fget_file_image(file.getId(), image.data(), image.size()) == size,
                 "store '{}': H5Fget_file_image failed", path);
    file.close();
  } catch (const H5::Exception& e) {
    fail("store '{}': cannot write: {} ({})", path, e.getDetailMsg(), e.getFuncName());
  }
  write_file_atomic(path, std::string_view(image.data(), image.size()));
}

}  // namespace qsweep
