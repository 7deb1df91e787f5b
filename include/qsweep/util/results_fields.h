#pragma once
// Each result record's fields, listed once: name and member, in declaration order. The JSON forms
// (results_json.cpp), the store's columns and attributes (src/store/store_fields.h) and the tests'
// record comparison (tests/record_diff.h) all walk these lists, as llama-bench's printers walk its
// one result struct. A new field is declared in results.h and added to its record's list below;
// nothing else changes.
#include "qsweep/util/results.h"

#include <tuple>

namespace qsweep {

// One field of Record: its name in JSON and in the store, and the member that holds it.
template <typename Record, typename T>
struct Field {
  using type = T;
  const char* name;
  T Record::*member;
};
template <typename Record, typename T>
Field(const char*, T Record::*) -> Field<Record, T>;

// Fields<Record>::list: the fields of Record, specialised below for every record that has one.
template <typename Record>
struct Fields;

// Calls visit(field) for each of Record's fields, in order.
template <typename Record, typename Visit>
void for_each_field(Visit&& visit) {
  std::apply([&](const auto&... field) { (visit(field), ...); }, Fields<Record>::list);
}

// Whether Record has a field list (a record to walk) or is a plain value.
template <typename T, typename = void>
inline constexpr bool has_fields = false;
template <typename T>
inline constexpr bool has_fields<T, std::void_t<decltype(Fields<T>::list)>> = true;

template <>
struct Fields<SampleRecord> {
  static constexpr auto list = std::tuple{
      Field{"id", &SampleRecord::id},
      Field{"turn", &SampleRecord::turn},
      Field{"source", &SampleRecord::source},
      Field{"prompt_sha256", &SampleRecord::prompt_sha256},
      Field{"prediction", &SampleRecord::prediction},
      Field{"generation", &SampleRecord::generation},
      Field{"golds", &SampleRecord::golds},
      Field{"em", &SampleRecord::em},
      Field{"f1", &SampleRecord::f1},
      Field{"prompt_tokens", &SampleRecord::prompt_tokens},
      Field{"generated_tokens", &SampleRecord::generated_tokens},
      Field{"stop_reason", &SampleRecord::stop_reason},
  };
};

template <>
struct Fields<BenchRecord> {
  static constexpr auto list = std::tuple{
      Field{"config", &BenchRecord::config},
      Field{"device", &BenchRecord::device},
      Field{"device_kind", &BenchRecord::device_kind},
      Field{"method", &BenchRecord::method},
      Field{"sync", &BenchRecord::sync},
      Field{"warmup", &BenchRecord::warmup},
      Field{"repeats", &BenchRecord::repeats},
      Field{"prefill_tokens", &BenchRecord::prefill_tokens},
      Field{"decode_tokens", &BenchRecord::decode_tokens},
      Field{"throughput_prompt_tokens", &BenchRecord::throughput_prompt_tokens},
      Field{"model_bytes", &BenchRecord::model_bytes},
      Field{"peak_memory_bytes", &BenchRecord::peak_memory_bytes},
      Field{"bits_per_weight", &BenchRecord::bits_per_weight},
      Field{"decode_bytes_per_step", &BenchRecord::decode_bytes_per_step},
      Field{"prefill_flops", &BenchRecord::prefill_flops},
      Field{"prefill_ms", &BenchRecord::prefill_ms},
      Field{"prefill_tflop_s", &BenchRecord::prefill_tflop_s},
      Field{"decode_ms_per_token", &BenchRecord::decode_ms_per_token},
      Field{"throughput_tokens_per_s", &BenchRecord::throughput_tokens_per_s},
      Field{"power_w", &BenchRecord::power_w},
      Field{"energy_j_per_token", &BenchRecord::energy_j_per_token},
      Field{"bandwidth_gb_s", &BenchRecord::bandwidth_gb_s},
      Field{"copy_bytes", &BenchRecord::copy_bytes},
      Field{"copy_bandwidth_gb_s", &BenchRecord::copy_bandwidth_gb_s},
      Field{"matmul_size", &BenchRecord::matmul_size},
      Field{"matmul_tflop_s", &BenchRecord::matmul_tflop_s},
      Field{"decode_fraction_of_copy_bandwidth", &BenchRecord::decode_fraction_of_copy_bandwidth},
      Field{"prefill_fraction_of_matmul_rate", &BenchRecord::prefill_fraction_of_matmul_rate},
  };
};

template <>
struct Fields<SanityOutput> {
  static constexpr auto list = std::tuple{
      Field{"prompt", &SanityOutput::prompt},
      Field{"output", &SanityOutput::output},
  };
};

template <>
struct Fields<UnitError> {
  static constexpr auto list = std::tuple{
      Field{"config", &UnitError::config},
      Field{"unit", &UnitError::unit},
      Field{"rank", &UnitError::rank},
      Field{"host", &UnitError::host},
      Field{"message", &UnitError::message},
  };
};

template <>
struct Fields<PrepareRecord> {
  static constexpr auto list = std::tuple{
      Field{"unit", &PrepareRecord::unit},
      Field{"rank", &PrepareRecord::rank},
      Field{"host", &PrepareRecord::host},
      Field{"source", &PrepareRecord::source},
      Field{"load_seconds", &PrepareRecord::load_seconds},
      Field{"quantize_seconds", &PrepareRecord::quantize_seconds},
      Field{"cache_entry", &PrepareRecord::cache_entry},
  };
};

template <>
struct Fields<UnitResult> {
  static constexpr auto list = std::tuple{
      Field{"key", &UnitResult::key},
      Field{"config", &UnitResult::config},
      Field{"rank", &UnitResult::rank},
      Field{"host", &UnitResult::host},
      Field{"seconds", &UnitResult::seconds},
      Field{"samples", &UnitResult::samples},
      Field{"bench", &UnitResult::bench},
      Field{"sanity", &UnitResult::sanity},
      Field{"perplexity", &UnitResult::perplexity},
      Field{"kl_vs_baseline", &UnitResult::kl_vs_baseline},
      Field{"prepare", &UnitResult::prepare},
      Field{"error", &UnitResult::error},
  };
};

// The per-config metrics are stored as attributes of /configs/<name>/metrics, named by joining
// the names along the path: ConfigMetrics::em -> MeanSummary::bca95 -> Interval::lo is
// "em" + "_bca95" + "_lo". Hence the names below are suffixes, and a mean is "" (plain "em").
template <>
struct Fields<Interval> {
  static constexpr auto list = std::tuple{
      Field{"_lo", &Interval::lo},
      Field{"_hi", &Interval::hi},
  };
};

template <>
struct Fields<MeanSummary> {
  static constexpr auto list = std::tuple{
      Field{"", &MeanSummary::mean},
      Field{"_n", &MeanSummary::n},
      Field{"_stderr", &MeanSummary::stderr_},
      Field{"_t95", &MeanSummary::t95},
      Field{"_bca95", &MeanSummary::bca95},
  };
};

template <>
struct Fields<PairedComparison> {
  static constexpr auto list = std::tuple{
      Field{"_baseline", &PairedComparison::baseline},
      Field{"_n", &PairedComparison::n},
      Field{"", &PairedComparison::mean_delta},
      Field{"_bca95", &PairedComparison::bca95},
      Field{"_p", &PairedComparison::p_value},
  };
};

template <>
struct Fields<ConfigMetrics> {
  static constexpr auto list = std::tuple{
      Field{"config", &ConfigMetrics::config},
      Field{"em", &ConfigMetrics::em},
      Field{"f1", &ConfigMetrics::f1},
      Field{"em_delta", &ConfigMetrics::em_vs_baseline},
      Field{"f1_delta", &ConfigMetrics::f1_vs_baseline},
  };
};

}  // namespace qsweep
