// JSON forms of the records, walked from their field lists (results_fields.h): one key per
// field, named as the field.
#include "qsweep/util/results_json.h"

#include "qsweep/util/results_fields.h"

namespace qsweep {
namespace {

using nlohmann::json;

// A field's JSON value is nlohmann's own, except for two shapes it would spell differently: an
// absent optional is null (the key is always there), and a batch-size map is an object keyed by
// the batch size ({"1": [...], "4": [...]}) rather than a list of pairs.
template <typename T>
json field_to_json(const T& value) {
  return value;
}

template <typename T>
json field_to_json(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

json field_to_json(const std::map<int, std::vector<double>>& by_batch) {
  json j = json::object();
  for (const auto& [batch, samples] : by_batch) j[std::to_string(batch)] = samples;
  return j;
}

template <typename T>
void field_from_json(const json& j, T& value) {
  j.get_to(value);
}

template <typename T>
void field_from_json(const json& j, std::optional<T>& value) {
  value = j.is_null() ? std::nullopt : std::optional<T>(j.get<T>());
}

void field_from_json(const json& j, std::map<int, std::vector<double>>& by_batch) {
  by_batch.clear();
  for (const auto& [batch, samples] : j.items())
    by_batch[std::stoi(batch)] = samples.get<std::vector<double>>();
}

template <typename Record>
void record_to_json(json& j, const Record& r) {
  j = json::object();
  for_each_field<Record>(
      [&](const auto& field) { j[field.name] = field_to_json(r.*field.member); });
}

// Every field is required: j.at() names a missing key.
template <typename Record>
void record_from_json(const json& j, Record& r) {
  for_each_field<Record>(
      [&](const auto& field) { field_from_json(j.at(field.name), r.*field.member); });
}

}  // namespace

void to_json(json& j, const SampleRecord& r) { record_to_json(j, r); }
void from_json(const json& j, SampleRecord& r) { record_from_json(j, r); }
void to_json(json& j, const BenchRecord& r) { record_to_json(j, r); }
void from_json(const json& j, BenchRecord& r) { record_from_json(j, r); }
void to_json(json& j, const UnitError& r) { record_to_json(j, r); }
void from_json(const json& j, UnitError& r) { record_from_json(j, r); }
void to_json(json& j, const SanityOutput& r) { record_to_json(j, r); }
void from_json(const json& j, SanityOutput& r) { record_from_json(j, r); }
void to_json(json& j, const PrepareRecord& r) { record_to_json(j, r); }
void from_json(const json& j, PrepareRecord& r) { record_from_json(j, r); }
void to_json(json& j, const UnitResult& r) { record_to_json(j, r); }
void from_json(const json& j, UnitResult& r) { record_from_json(j, r); }

}  // namespace qsweep
