// Results -> HDF5, in the layout of docs/results-schema.md. The whole file is written anew each
// time (a few MB at most), into FILE.tmp and then renamed over FILE, so a reader or a killed
// writer only ever sees a complete file.
#include "hdf5_io.h"
#include "qsweep/util/error.h"
#include "qsweep/eval/stats.h"
#include "qsweep/store/store.h"
#include "store_layout.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

namespace fs = std::filesystem;

namespace qsweep {
namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

std::string join_golds(const std::vector<std::string>& golds) {
  std::string out;
  for (size_t i = 0; i < golds.size(); ++i) {
    if (golds[i].find(kGoldSeparator) != std::string::npos)
      fail("gold answer '{}' contains the store's separator U+001F", golds[i]);
    out += (i ? std::string(1, kGoldSeparator) : "") + golds[i];
  }
  return out;
}

void write_samples(const H5::Group& parent, const ConfigResults& c) {
  const H5::Group g = h5::group(parent, "samples");
  std::vector<std::string> unit, id, source, prompt_sha256, prediction, golds, stop_reason;
  std::vector<int64_t> turn, prompt_tokens, generated_tokens;
  std::vector<double> em, f1;
  for (const auto& [key, records] : c.samples) {
    for (const SampleRecord& r : records) {
      unit.push_back(key);
      id.push_back(r.id);
      turn.push_back(r.turn);
      source.push_back(r.source);
      prompt_sha256.push_back(r.prompt_sha256);
      prediction.push_back(r.prediction);
      golds.push_back(join_golds(r.golds));
      em.push_back(r.em);
      f1.push_back(r.f1);
      prompt_tokens.push_back(r.prompt_tokens);
      generated_tokens.push_back(r.generated_tokens);
      stop_reason.push_back(r.stop_reason);
    }
  }
  h5::write_strings(g, "unit", unit);
  h5::write_strings(g, "id", id);
  h5::write_ints(g, "turn", turn);
  h5::write_strings(g, "source", source);
  h5::write_strings(g, "prompt_sha256", prompt_sha256);
  h5::write_strings(g, "prediction", prediction);
  h5::write_strings(g, "golds", golds);
  h5::write_doubles(g, "em", em);
  h5::write_doubles(g, "f1", f1);
  h5::write_ints(g, "prompt_tokens", prompt_tokens);
  h5::write_ints(g, "generated_tokens", generated_tokens);
  h5::write_strings(g, "stop_reason", stop_reason);
}

void write_mean(const H5::Group& g, const std::string& p, const MeanSummary& m) {
  h5::set_attr(g, p + "_n", static_cast<int64_t>(m.n));
  h5::set_attr(g, p, m.mean);
  h5::set_attr(g, p + "_stderr", m.stderr_);
  h5::set_attr(g, p + "_t95_lo", m.t95.lo);
  h5::set_attr(g, p + "_t95_hi", m.t95.hi);
  h5::set_attr(g, p + "_bca95_lo", m.bca95.lo);
  h5::set_attr(g, p + "_bca95_hi", m.bca95.hi);
}

void write_paired(const H5::Group& g, const std::string& p, const PairedComparison& c) {
  h5::set_attr(g, p + "_baseline", c.baseline);
  h5::set_attr(g, p + "_n", static_cast<int64_t>(c.n));
  h5::set_attr(g, p, c.mean_delta);
  h5::set_attr(g, p + "_bca95_lo", c.bca95.lo);
  h5::set_attr(g, p + "_bca95_hi", c.bca95.hi);
  h5::set_attr(g, p + "_p", c.p_value);
}

void write_metrics(const H5::Group& parent, const ConfigResults& c) {
  const H5::Group g = h5::group(parent, "metrics");
  if (!c.metrics) return;
  write_mean(g, "em", c.metrics->em);
  write_mean(g, "f1", c.metrics->f1);
  if (c.metrics->em_vs_baseline) write_paired(g, "em_delta", *c.metrics->em_vs_baseline);
  if (c.metrics->f1_vs_baseline) write_paired(g, "f1_delta", *c.metrics->f1_vs_baseline);
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

void write_bench(const H5::Group& parent, const ConfigResults& c) {
  if (!c.bench) return;
  const BenchRecord& b = *c.bench;
  const H5::Group g = h5::group(parent, "bench");
  h5::set_attr(g, "device", b.device);
  h5::set_attr(g, "method", b.method);
  h5::set_attr(g, "model_bytes", b.model_bytes);
  h5::set_attr(g, "peak_memory_bytes", b.peak_memory_bytes);
  write_bench_column(g, "prefill_ms", b.prefill_ms);
  write_bench_column(g, "decode_ms_per_token", b.decode_ms_per_token);
  for (const auto& [batch, values] : b.throughput_tokens_per_s)
    write_bench_column(g, kThroughputPrefix + std::to_string(batch), values);
  write_bench_column(g, "power_w", b.power_w);
  write_bench_column(g, "bandwidth_gb_s", b.bandwidth_gb_s);
}

void write_sanity(const H5::Group& parent, const ConfigResults& c) {
  if (c.sanity.empty() && !c.perplexity) return;
  const H5::Group g = h5::group(parent, "sanity");
  std::vector<std::string> prompts, outputs;
  for (const auto& s : c.sanity) {
    prompts.push_back(s.prompt);
    outputs.push_back(s.output);
  }
  h5::write_strings(g, "prompt", prompts);
  h5::write_strings(g, "output", outputs);
  if (c.perplexity) h5::set_attr(g, "perplexity", *c.perplexity);
  if (c.kl_vs_baseline) h5::set_attr(g, "kl_vs_baseline", *c.kl_vs_baseline);
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
  }
}

void write_units(const H5::Group& root, const Results& r) {
  const H5::Group g = h5::group(root, "units");
  std::vector<std::string> key, config, kind, status, host, finished_at;
  std::vector<int64_t> rank;
  std::vector<double> seconds;
  for (const UnitRecord& u : r.units) {
    key.push_back(u.key);
    config.push_back(u.config);
    kind.push_back(unit_kind_name(u.kind));
    status.push_back(unit_status_name(u.status));
    rank.push_back(u.rank);
    host.push_back(u.host);
    seconds.push_back(u.seconds);
    finished_at.push_back(u.finished_at);
  }
  h5::write_strings(g, "key", key);
  h5::write_strings(g, "config", config);
  h5::write_strings(g, "kind", kind);
  h5::write_strings(g, "status", status);
  h5::write_ints(g, "rank", rank);
  h5::write_strings(g, "host", host);
  h5::write_doubles(g, "seconds", seconds);
  h5::write_strings(g, "finished_at", finished_at);
}

void write_errors(const H5::Group& root, const Results& r) {
  const H5::Group g = h5::group(root, "errors");
  std::vector<std::string> config, unit, host, message;
  std::vector<int64_t> rank;
  for (const UnitError& e : r.errors) {
    config.push_back(e.config);
    unit.push_back(e.unit);
    rank.push_back(e.rank);
    host.push_back(e.host);
    message.push_back(e.message);
  }
  h5::write_strings(g, "config", config);
  h5::write_strings(g, "unit", unit);
  h5::write_ints(g, "rank", rank);
  h5::write_strings(g, "host", host);
  h5::write_strings(g, "message", message);
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

// Survives a node crash too, not only a killed process: the data reaches the disk before the
// rename makes it the store.
void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    fail("store '{}': fsync failed: {}", path, std::strerror(err));
  }
  ::close(fd);
}

}  // namespace

void write_store(const std::string& path, const Results& results) {
  const std::string tmp = path + ".tmp";
  H5::Exception::dontPrint();
  try {
    H5::H5File file(tmp, H5F_ACC_TRUNC);
    const H5::Group root = file.openGroup("/");
    write_provenance(root, results);
    write_configs(root, results);
    write_units(root, results);
    write_errors(root, results);
    write_summary(root, results);
    file.close();
  } catch (const H5::Exception& e) {
    fail("store '{}': cannot write: {} ({})", tmp, e.getDetailMsg(), e.getFuncName());
  }
  fsync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    fail("store '{}': cannot rename '{}' over it: {}", path, tmp, std::strerror(errno));
  fsync_path(fs::absolute(path).parent_path().string());
}

}  // namespace qsweep
