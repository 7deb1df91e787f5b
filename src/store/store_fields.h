#pragma once
// Records as store tables, walked from their field lists (qsweep/util/results_fields.h): a table
// is a group with one column per field, named as the field, one row per record. Each C++ field
// type has one column type (docs/results-schema.md): strings as UTF-8, integers as int64, reals
// as float64, a list of gold answers as one string joined by kGoldSeparator, a unit's kind and
// status by name. Private to the store.
#include "hdf5_io.h"
#include "qsweep/store/store.h"
#include "qsweep/util/error.h"
#include "qsweep/util/results_fields.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace qsweep {

// A record's `config` field is the name of the /configs/<name> group that holds the record, so
// it is not stored again inside that group.
inline bool is_group_name(const char* field) { return std::string_view(field) == "config"; }

// Field value -> column value.
inline int64_t to_column(int value) { return value; }
inline int64_t to_column(int64_t value) { return value; }
inline double to_column(double value) { return value; }
inline const std::string& to_column(const std::string& value) { return value; }
std::string to_column(const std::vector<std::string>& golds);
std::string to_column(UnitKind kind);
std::string to_column(UnitStatus status);

// Column value -> field value; throws Error for a value the field cannot hold.
inline void from_column(int64_t stored, int& value) { value = static_cast<int>(stored); }
inline void from_column(int64_t stored, int64_t& value) { value = stored; }
inline void from_column(double stored, double& value) { value = stored; }
inline void from_column(const std::string& stored, std::string& value) { value = stored; }
void from_column(const std::string& stored, std::vector<std::string>& golds);
void from_column(const std::string& stored, UnitKind& kind);
void from_column(const std::string& stored, UnitStatus& status);

// The column type of a field of type T.
template <typename T>
using column_t = std::decay_t<decltype(to_column(std::declval<const T&>()))>;

inline void write_column(const H5::Group& g, const std::string& name,
                         const std::vector<std::string>& values) {
  h5::write_strings(g, name, values);
}
inline void write_column(const H5::Group& g, const std::string& name,
                         const std::vector<int64_t>& values) {
  h5::write_ints(g, name, values);
}
inline void write_column(const H5::Group& g, const std::string& name,
                         const std::vector<double>& values) {
  h5::write_doubles(g, name, values);
}

inline void read_column(const H5::Group& g, const std::string& name,
                        std::vector<std::string>& values) {
  values = h5::read_strings(g, name);
}
inline void read_column(const H5::Group& g, const std::string& name,
                        std::vector<int64_t>& values) {
  values = h5::read_ints(g, name);
}
inline void read_column(const H5::Group& g, const std::string& name,
                        std::vector<double>& values) {
  values = h5::read_doubles(g, name);
}

// Every column of a table must have as many rows as its first one.
void check_rows(const H5::Group& g, const std::string& name, size_t rows, size_t expected);

template <typename Record, typename T>
void write_field(const H5::Group& g, const std::vector<Record>& records,
                 const Field<Record, T>& field) {
  std::vector<column_t<T>> column;
  for (const Record& r : records) column.push_back(to_column(r.*field.member));
  write_column(g, field.name, column);
}

// The name of the column that says which rows of an optional text field hold a value.
inline std::string present_column(const char* field) { return std::string(field) + "_present"; }

// A text field that stores written before it lack: no column when no row has a value, and only
// when some rows lack one (a store resumed from an older one) "<name>_present" (1/0) beside it,
// those rows holding "". An empty text is a value, so it cannot mark an absent one.
template <typename Record>
void write_field(const H5::Group& g, const std::vector<Record>& records,
                 const Field<Record, std::optional<std::string>>& field) {
  std::vector<std::string> values;
  std::vector<int64_t> present;
  for (const Record& r : records) {
    const std::optional<std::string>& value = r.*field.member;
    values.push_back(value.value_or(""));
    present.push_back(value ? 1 : 0);
  }
  const auto with_value = std::count(present.begin(), present.end(), 1);
  if (with_value == 0) return;
  write_column(g, field.name, values);
  if (with_value < static_cast<std::ptrdiff_t>(present.size()))
    write_column(g, present_column(field.name), present);
}

template <typename Record>
void write_table(const H5::Group& g, const std::vector<Record>& records) {
  for_each_field<Record>([&](const auto& field) { write_field(g, records, field); });
}

// The first field read sets the number of rows (`sized` until then false).
template <typename Record, typename T>
void read_field(const H5::Group& g, std::vector<Record>& records, const Field<Record, T>& field,
                bool& sized) {
  std::vector<column_t<T>> column;
  read_column(g, field.name, column);
  if (!sized) records.resize(column.size());
  sized = true;
  check_rows(g, field.name, column.size(), records.size());
  try {
    for (size_t i = 0; i < column.size(); ++i) from_column(column[i], records[i].*field.member);
  } catch (const Error& e) {
    fail("store '{}': '{}/{}': {}", g.getFileName(), g.getObjName(), field.name, e.what());
  }
}

// The mirror of write_field for an optional text field: a missing column is every row absent.
// Never a table's first field, so it never sets the number of rows.
template <typename Record>
void read_field(const H5::Group& g, std::vector<Record>& records,
                const Field<Record, std::optional<std::string>>& field, bool&) {
  if (!h5::has(g, field.name)) return;
  std::vector<std::string> values;
  read_column(g, field.name, values);
  check_rows(g, field.name, values.size(), records.size());
  std::vector<int64_t> present(values.size(), 1);
  if (h5::has(g, present_column(field.name))) {
    read_column(g, present_column(field.name), present);
    check_rows(g, present_column(field.name), present.size(), records.size());
  }
  for (size_t i = 0; i < values.size(); ++i)
    if (present[i] != 0) records[i].*field.member = std::move(values[i]);
}

// The records of a table written by write_table; its first column sets the number of rows.
template <typename Record>
std::vector<Record> read_table(const H5::Group& g) {
  std::vector<Record> records;
  bool sized = false;
  for_each_field<Record>([&](const auto& field) { read_field(g, records, field, sized); });
  return records;
}

}  // namespace qsweep
