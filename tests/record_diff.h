#pragma once
// Compares two result records field by field, walking their field lists
// (qsweep/util/results_fields.h), and names the first field that differs:
//
//   EXPECT_EQ(record_diff(read_back, written), "");
//   // fails with: configs[1].samples[fp32/coqa/0000][3].f1: 0.4 != 0.5
//
// Two NaNs are the same value here: a round trip that keeps a NaN keeps the value.
#include "qsweep/util/results_fields.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace qsweep::testing {

template <typename T>
std::string record_diff(const T& a, const T& b, const std::string& path = "");
template <typename T>
std::string record_diff(const std::vector<T>& a, const std::vector<T>& b,
                        const std::string& path = "");
template <typename K, typename V>
std::string record_diff(const std::map<K, V>& a, const std::map<K, V>& b,
                        const std::string& path = "");
template <typename T>
std::string record_diff(const std::optional<T>& a, const std::optional<T>& b,
                        const std::string& path = "");

// "configs[1].samples", and "metrics.em" + "_bca95": the metrics' suffix names join as the
// store's attribute names do.
inline std::string field_path(const std::string& path, const std::string& name) {
  if (name.empty() || name[0] == '_' || path.empty()) return path + name;
  return path + "." + name;
}

template <typename T>
std::string shown(const T& value) {
  if constexpr (std::is_enum_v<T>)
    return std::to_string(static_cast<int>(value));
  else if constexpr (std::is_same_v<T, std::string>)
    return '"' + value + '"';
  else
    return fmt::format("{}", value);  // numbers as the shortest text that reads back the same
}

template <typename T>
std::string record_diff(const T& a, const T& b, const std::string& path) {
  if constexpr (has_fields<T>) {
    std::string diff;
    for_each_field<T>([&](const auto& field) {
      if (diff.empty())
        diff = record_diff(a.*field.member, b.*field.member, field_path(path, field.name));
    });
    return diff;
  } else {
    const bool same = [&] {
      if constexpr (std::is_floating_point_v<T>)
        return a == b || (std::isnan(a) && std::isnan(b));
      else
        return a == b;
    }();
    return same ? "" : path + ": " + shown(a) + " != " + shown(b);
  }
}

template <typename T>
std::string record_diff(const std::vector<T>& a, const std::vector<T>& b,
                        const std::string& path) {
  if (a.size() != b.size())
    return path + ": " + std::to_string(a.size()) + " != " + std::to_string(b.size()) + " items";
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string diff = record_diff(a[i], b[i], path + "[" + std::to_string(i) + "]");
    if (!diff.empty()) return diff;
  }
  return "";
}

template <typename K, typename V>
std::string record_diff(const std::map<K, V>& a, const std::map<K, V>& b,
                        const std::string& path) {
  for (const auto& [key, value] : a) {
    const auto other = b.find(key);
    const std::string at = path + "[" + shown(key) + "]";
    if (other == b.end()) return at + ": only in the first";
    const std::string diff = record_diff(value, other->second, at);
    if (!diff.empty()) return diff;
  }
  for (const auto& [key, value] : b)
    if (!a.count(key)) return path + "[" + shown(key) + "]: only in the second";
  return "";
}

template <typename T>
std::string record_diff(const std::optional<T>& a, const std::optional<T>& b,
                        const std::string& path) {
  if (a.has_value() != b.has_value())
    return path + ": " + (a ? "set" : "unset") + " != " + (b ? "set" : "unset");
  return a ? record_diff(*a, *b, path) : "";
}

}  // namespace qsweep::testing
