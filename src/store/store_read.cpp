// HDF5 -> Results: the mirror of store_write.cpp. /summary is derived data and is not read.
#include "hdf5_io.h"
#include "qsweep/util/error.h"
#include "qsweep/store/store.h"
#include "store_layout.h"

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace qsweep {
namespace {

// Every column of a table must have as many rows as its first one.
void check_rows(const H5::Group& g, const std::string& name, size_t rows, size_t expected) {
  if (rows != expected)
    fail("store '{}': '{}/{}' has {} rows, other columns of the table have {}", g.getFileName(),
         g.getObjName(), name, rows, expected);
}

std::vector<std::string> split_golds(const std::string& joined) {
  std::vector<std::string> golds;
  if (joined.empty()) return golds;
  size_t start = 0;
  for (size_t sep = joined.find(kGoldSeparator); sep != std::string::npos;
       sep = joined.find(kGoldSeparator, start)) {
    golds.push_back(joined.substr(start, sep - start));
    start = sep + 1;
  }
  golds.push_back(joined.substr(start));
  return golds;
}

void read_samples(const H5::Group& parent, ConfigResults& c) {
  const H5::Group g = h5::open_group(parent, "samples");
  const auto unit = h5::read_strings(g, "unit");
  const auto id = h5::read_strings(g, "id");
  const auto turn = h5::read_ints(g, "turn");
  const auto source = h5::read_strings(g, "source");
  const auto prompt_sha256 = h5::read_strings(g, "prompt_sha256");
  const auto prediction = h5::read_strings(g, "prediction");
  const auto golds = h5::read_strings(g, "golds");
  const auto em = h5::read_doubles(g, "em");
  const auto f1 = h5::read_doubles(g, "f1");
  const auto prompt_tokens = h5::read_ints(g, "prompt_tokens");
  const auto generated_tokens = h5::read_ints(g, "generated_tokens");
  const auto stop_reason = h5::read_strings(g, "stop_reason");
  const size_t n = unit.size();
  for (const auto& [name, rows] :
       {std::pair{"id", id.size()}, {"turn", turn.size()}, {"source", source.size()},
        {"prompt_sha256", prompt_sha256.size()}, {"prediction", prediction.size()},
        {"golds", golds.size()}, {"em", em.size()}, {"f1", f1.size()},
        {"prompt_tokens", prompt_tokens.size()}, {"generated_tokens", generated_tokens.size()},
        {"stop_reason", stop_reason.size()}})
    check_rows(g, name, rows, n);
  for (size_t i = 0; i < n; ++i) {
    c.samples[unit[i]].push_back(SampleRecord{
        id[i], static_cast<int>(turn[i]), source[i], prompt_sha256[i], prediction[i],
        split_golds(golds[i]), em[i], f1[i], static_cast<int>(prompt_tokens[i]),
        static_cast<int>(generated_tokens[i]), stop_reason[i]});
  }
}

MeanSummary read_mean(const H5::Group& g, const std::string& p) {
  MeanSummary m;
  m.n = static_cast<size_t>(h5::attr_int(g, p + "_n").value_or(0));
  m.mean = h5::attr_double(g, p).value_or(0);
  m.stderr_ = h5::attr_double(g, p + "_stderr").value_or(0);
  m.t95 = {h5::attr_double(g, p + "_t95_lo").value_or(0),
           h5::attr_double(g, p + "_t95_hi").value_or(0)};
  m.bca95 = {h5::attr_double(g, p + "_bca95_lo").value_or(0),
             h5::attr_double(g, p + "_bca95_hi").value_or(0)};
  return m;
}

std::optional<PairedComparison> read_paired(const H5::Group& g, const std::string& p) {
  const auto baseline = h5::attr_string(g, p + "_baseline");
  if (!baseline) return std::nullopt;
  PairedComparison c;
  c.baseline = *baseline;
  c.n = static_cast<size_t>(h5::attr_int(g, p + "_n").value_or(0));
  c.mean_delta = h5::attr_double(g, p).value_or(0);
  c.bca95 = {h5::attr_double(g, p + "_bca95_lo").value_or(0),
             h5::attr_double(g, p + "_bca95_hi").value_or(0)};
  c.p_value = h5::attr_double(g, p + "_p").value_or(1);
  return c;
}

void read_metrics(const H5::Group& parent, ConfigResults& c) {
  if (!h5::has(parent, "metrics")) return;
  const H5::Group g = h5::open_group(parent, "metrics");
  if (!h5::attr_double(g, "em")) return;
  ConfigMetrics m;
  m.config = c.name;
  m.em = read_mean(g, "em");
  m.f1 = read_mean(g, "f1");
  m.em_vs_baseline = read_paired(g, "em_delta");
  m.f1_vs_baseline = read_paired(g, "f1_delta");
  c.metrics = m;
}

void read_bench(const H5::Group& parent, ConfigResults& c) {
  if (!h5::has(parent, "bench")) return;
  const H5::Group g = h5::open_group(parent, "bench");
  BenchRecord b;
  b.config = c.name;
  b.device = h5::attr_string(g, "device").value_or("");
  b.method = h5::attr_string(g, "method").value_or("");
  b.model_bytes = h5::attr_int(g, "model_bytes").value_or(0);
  b.peak_memory_bytes = h5::attr_int(g, "peak_memory_bytes").value_or(0);
  b.prefill_ms = h5::read_doubles(g, "prefill_ms");
  b.decode_ms_per_token = h5::read_doubles(g, "decode_ms_per_token");
  b.power_w = h5::read_doubles(g, "power_w");
  b.bandwidth_gb_s = h5::read_doubles(g, "bandwidth_gb_s");
  const std::string prefix = kThroughputPrefix;
  for (const std::string& name : h5::children(g))
    if (name.rfind(prefix, 0) == 0)
      b.throughput_tokens_per_s[std::stoi(name.substr(prefix.size()))] = h5::read_doubles(g, name);
  c.bench = b;
}

void read_sanity(const H5::Group& parent, ConfigResults& c) {
  if (!h5::has(parent, "sanity")) return;
  const H5::Group g = h5::open_group(parent, "sanity");
  const auto prompts = h5::read_strings(g, "prompt");
  const auto outputs = h5::read_strings(g, "output");
  check_rows(g, "output", outputs.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) c.sanity.push_back({prompts[i], outputs[i]});
  c.perplexity = h5::attr_double(g, "perplexity");
  c.kl_vs_baseline = h5::attr_double(g, "kl_vs_baseline");
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
    indexed.emplace_back(h5::attr_int(g, "index").value_or(0), std::move(c));
  }
  std::stable_sort(indexed.begin(), indexed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ConfigResults> out;
  for (auto& [index, c] : indexed) out.push_back(std::move(c));
  return out;
}

UnitKind parse_kind(const std::string& s, const H5::Group& g) {
  if (const auto kind = parse_unit_kind(s)) return *kind;
  fail("store '{}': '{}/kind' holds unknown unit kind '{}'", g.getFileName(), g.getObjName(), s);
}

UnitStatus parse_status(const std::string& s, const H5::Group& g) {
  for (UnitStatus st : {UnitStatus::todo, UnitStatus::done, UnitStatus::failed})
    if (unit_status_name(st) == s) return st;
  fail("store '{}': '{}/status' holds unknown status '{}'", g.getFileName(), g.getObjName(), s);
}

std::vector<UnitRecord> read_units(const H5::Group& root) {
  const H5::Group g = h5::open_group(root, "units");
  const auto key = h5::read_strings(g, "key");
  const auto config = h5::read_strings(g, "config");
  const auto kind = h5::read_strings(g, "kind");
  const auto status = h5::read_strings(g, "status");
  const auto rank = h5::read_ints(g, "rank");
  const auto host = h5::read_strings(g, "host");
  const auto seconds = h5::read_doubles(g, "seconds");
  const auto finished_at = h5::read_strings(g, "finished_at");
  for (const auto& [name, rows] :
       {std::pair{"config", config.size()}, {"kind", kind.size()}, {"status", status.size()},
        {"rank", rank.size()}, {"host", host.size()}, {"seconds", seconds.size()},
        {"finished_at", finished_at.size()}})
    check_rows(g, name, rows, key.size());
  std::vector<UnitRecord> units;
  for (size_t i = 0; i < key.size(); ++i)
    units.push_back({key[i], config[i], parse_kind(kind[i], g), parse_status(status[i], g),
                     static_cast<int>(rank[i]), host[i], seconds[i], finished_at[i]});
  return units;
}

std::vector<UnitError> read_errors(const H5::Group& root) {
  const H5::Group g = h5::open_group(root, "errors");
  const auto config = h5::read_strings(g, "config");
  const auto unit = h5::read_strings(g, "unit");
  const auto rank = h5::read_ints(g, "rank");
  const auto host = h5::read_strings(g, "host");
  const auto message = h5::read_strings(g, "message");
  for (const auto& [name, rows] : {std::pair{"unit", unit.size()}, {"rank", rank.size()},
                                   {"host", host.size()}, {"message", message.size()}})
    check_rows(g, name, rows, config.size());
  std::vector<UnitError> errors;
  for (size_t i = 0; i < config.size(); ++i)
    errors.push_back({config[i], unit[i], static_cast<int>(rank[i]), host[i], message[i]});
  return errors;
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
    r.units = read_units(root);
    r.errors = read_errors(root);
    return r;
  } catch (const H5::Exception& e) {
    fail("store '{}': cannot read: {} ({})", path, e.getDetailMsg(), e.getFuncName());
  }
}

}  // namespace qsweep
