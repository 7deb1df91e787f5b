// HDF5 -> Results: the mirror of store_write.cpp. /summary is derived data and is not read.
#include "hdf5_io.h"
#include "qsweep/util/error.h"
#include "qsweep/store/store.h"
#include "store_fields.h"
#include "store_layout.h"
#include "store_timing.h"

#include <algorithm>
#include <map>
#include <limits>
#include <filesystem>

namespace fs = std::filesystem;

namespace qsweep {
namespace {

void read_samples(const H5::Group& parent, ConfigResults& c) {
  const H5::Group g = h5::open_group(parent, "samples");
  const auto unit = h5::read_strings(g, "unit");
  std::vector<SampleRecord> rows = read_table<SampleRecord>(g);
  check_rows(g, "id", rows.size(), unit.size());
  for (size_t i = 0; i < rows.size(); ++i) c.samples[unit[i]].push_back(std::move(rows[i]));
}

// The mirror of store_write.cpp's write_attrs: an attribute that is not there leaves the field's
// default, and an optional is there when the attribute of its own name (its "" field) is.
void read_attrs(const H5::Group& g, const std::string& name, double& value) {
  if (const auto a = h5::attr_double(g, name)) value = *a;
}
void read_attrs(const H5::Group& g, const std::string& name, size_t& value) {
  if (const auto a = h5::attr_int(g, name)) value = static_cast<size_t>(*a);
}
void read_attrs(const H5::Group& g, const std::string& name, std::string& value) {
  if (const auto a = h5::attr_string(g, name)) value = *a;
}
template <typename Record>
std::enable_if_t<has_fields<Record>> read_attrs(const H5::Group& g, const std::string& prefix,
                                                Record& r);
template <typename T>
void read_attrs(const H5::Group& g, const std::string& name, std::optional<T>& value) {
  value.reset();
  if (!h5::has_attr(g, name)) return;
  read_attrs(g, name, value.emplace());
}
template <typename Record>
std::enable_if_t<has_fields<Record>> read_attrs(const H5::Group& g, const std::string& prefix,
                                                Record& r) {
  for_each_field<Record>([&](const auto& field) {
    if (!is_group_name(field.name)) read_attrs(g, prefix + field.name, r.*field.member);
  });
}

void read_metrics(const H5::Group& parent, ConfigResults& c) {
  if (!h5::has(parent, "metrics")) return;
  const H5::Group g = h5::open_group(parent, "metrics");
  if (!h5::has_attr(g, "em")) return;  // the group is there before its metrics are computed
  ConfigMetrics m;
  m.config = c.name;
  read_attrs(g, "", m);
  c.metrics = m;
  c.metrics_from = h5::attr_string(g, "derived_from").value_or("");
}

// The mirror of store_write.cpp's write_bench_field.
void read_bench_field(const H5::Group& g, const std::string& name, std::string& value) {
  value = h5::attr_string(g, name).value_or("");
}
// -1: a count that a store written before the field existed lacks (store_write.cpp).
void read_bench_field(const H5::Group& g, const std::string& name, int64_t& value) {
  value = h5::attr_int(g, name).value_or(-1);
}
void read_bench_field(const H5::Group& g, const std::string& name, double& value) {
  value = h5::attr_double(g, name).value_or(std::numeric_limits<double>::quiet_NaN());
}
// A column that a store written before the field existed lacks reads as no samples.
void read_bench_field(const H5::Group& g, const std::string& name, std::vector<double>& samples) {
  samples = h5::has(g, name) ? h5::read_doubles(g, name) : std::vector<double>{};
}
void read_bench_field(const H5::Group& g, const std::string& /*name*/,
                      std::map<int, std::vector<double>>& by_batch) {
  const std::string prefix = kThroughputPrefix;
  for (const std::string& column : h5::children(g))
    if (column.rfind(prefix, 0) == 0)
      by_batch[std::stoi(column.substr(prefix.size()))] = h5::read_doubles(g, column);
}

void read_bench(const H5::Group& parent, ConfigResults& c) {
  if (!h5::has(parent, "bench")) return;
  const H5::Group g = h5::open_group(parent, "bench");
  BenchRecord b;
  b.config = c.name;
  for_each_field<BenchRecord>([&](const auto& field) {
    if (!is_group_name(field.name)) read_bench_field(g, field.name, b.*field.member);
  });
  c.bench = b;
}

void read_sanity(const H5::Group& parent, ConfigResults& c) {
  if (!h5::has(parent, "sanity")) return;
  const H5::Group g = h5::open_group(parent, "sanity");
  c.sanity = read_table<SanityOutput>(g);
  c.perplexity = h5::attr_double(g, "perplexity");
  c.kl_vs_baseline = h5::attr_double(g, "kl_vs_baseline");
  c.kl_baseline = h5::attr_string(g, "kl_baseline").value_or("");
}

void read_preparations(const H5::Group& parent, ConfigResults& c) {
  if (h5::has(parent, "prepare"))
    c.preparations = read_table<PrepareRecord>(h5::open_group(parent, "prepare"));
}

std::vector<ConfigResults> read_configs(const H5::Group& root) {
  const H5::Group configs = h5::open_group(root, "configs");
  std::vector<std::pair<int64_t, ConfigResults>> indexed;
  for (const std::string& name : h5::children(configs)) {
    const H5::Group g = h5::open_group(configs, name);
    ConfigResults c;
    c.name = name;
    c.fingerprint = h5::attr_string(g, "fingerprint").value_or("");
    read_samples(g, c);
    read_metrics(g, c);
    read_bench(g, c);
    read_sanity(g, c);
    read_preparations(g, c);
    indexed.emplace_back(h5::attr_int(g, "index").value_or(0), std::move(c));
  }
  std::stable_sort(indexed.begin(), indexed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ConfigResults> out;
  for (auto& [index, c] : indexed) out.push_back(std::move(c));
  return out;
}

std::map<std::string, std::string> read_provenance(const H5::Group& root, const std::string& path) {
  if (!h5::has(root, "provenance"))
    fail("'{}' is an HDF5 file but not a qsweep results store (no /provenance)", path);
  const H5::Group g = h5::open_group(root, "provenance");
  std::map<std::string, std::string> provenance;
  for (const std::string& name : h5::attr_names(g))
    provenance[name] = h5::attr_string(g, name).value_or("");
  if (provenance["format"] != kStoreFormat)
    fail("'{}' is an HDF5 file but not a qsweep results store (/provenance format is '{}')", path,
         provenance["format"]);
  if (provenance["format_version"] != kStoreFormatVersion)
    fail("store '{}' has layout version '{}'; this qsweep reads version {}", path,
         provenance["format_version"], kStoreFormatVersion);
  return provenance;
}

// Each planned unit is listed once; a unit twice (a store edited by hand, or merged from two)
// would have its samples counted twice or its status depend on which row is read.
void check_units_unique(const std::string& path, const std::vector<UnitRecord>& units) {
  std::map<std::string, size_t> row_of;
  for (size_t i = 0; i < units.size(); ++i) {
    const auto [it, fresh] = row_of.emplace(units[i].key, i);
    if (!fresh)
      fail("store '{}': its unit list (/units) names unit '{}' twice, rows {} and {}; the store "
           "was edited or merged by hand: restore it, or start a new store",
           path, units[i].key, it->second, i);
  }
}

}  // namespace

Results read_store(const std::string& path) {
  if (!fs::is_regular_file(path)) fail("store '{}' does not exist", path);
  H5::Exception::dontPrint();
  try {
    if (!H5::H5File::isHdf5(path)) fail("'{}' is not an HDF5 file", path);
    const H5::H5File file(path, H5F_ACC_RDONLY);
    const H5::Group root = file.openGroup("/");
    Results r;
    r.provenance = read_provenance(root, path);
    r.configs = read_configs(root);
    r.units = read_table<UnitRecord>(h5::open_group(root, "units"));
    check_units_unique(path, r.units);
    r.errors = read_table<UnitError>(h5::open_group(root, "errors"));
    r.timing = read_timing(root);
    return r;
  } catch (const H5::Exception& e) {
    fail("store '{}': cannot read: {} ({})", path, e.getDetailMsg(), e.getFuncName());
  }
}

}  // namespace qsweep
