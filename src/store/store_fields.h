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

template <typename Record>
void write_table(const H5::Group& g, const std::vector<Record>& records) {
  for_each_field<Record>([&](const auto& field) {
    std::vector<column_t<typename std::decay_t<decltype(field)>::type>> column;
    for (const Record& r : records) column.push_back(to_column(r.*field.member));
    write_column(g, field.name, column);
  });
}

// The records of a table written by write_table; its first column sets the number of rows.
template <typename Record>
std::vector<Record> read_table(const H5::Group& g) {
  std::vector<Record> records;
  bool first = true;
  for_each_field<Record>([&](const auto& field) {
    std::vector<column_t<typename std::decay_t<decltype(field)>::type>> column;
    read_column(g, field.name, column);
    if (first) records.resize(column.size());
    first = false;
    check_rows(g, field.name, column.size(), records.size());
    try {
      for (size_t i = 0; i < column.size(); ++i) from_column(column[i], records[i].*field.member);
    } catch (const Error& e) {
      fail("store '{}': '{}/{}': {}", g.getFileName(), g.getObjName(), field.name, e.what());
    }
  });
  return records;
}

}  // namespace qsweep
