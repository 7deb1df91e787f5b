// A segment's totals are attributes of /timing/<NNN>, its per-rank and per-preparation rows two
// tables beside them, all walked from the field lists in qsweep/store/timing.h.
#include "store_timing.h"

#include "qsweep/util/error.h"
#include "store_fields.h"

#include <fmt/format.h>

#include <algorithm>

namespace qsweep {
namespace {

void write_total(const H5::Group& g, const char* name, const std::string& value) {
  h5::set_attr(g, name, value);
}
void write_total(const H5::Group& g, const char* name, int64_t value) { h5::set_attr(g, name, value); }
void write_total(const H5::Group& g, const char* name, double value) { h5::set_attr(g, name, value); }
template <typename Row>
void write_total(const H5::Group& g, const char* name, const std::vector<Row>& rows) {
  write_table(h5::group(g, name), rows);
}

void read_total(const H5::Group& g, const char* name, std::string& value) {
  value = h5::attr_string(g, name).value_or("");
}
void read_total(const H5::Group& g, const char* name, int64_t& value) {
  value = h5::attr_int(g, name).value_or(0);
}
void read_total(const H5::Group& g, const char* name, double& value) {
  value = h5::attr_double(g, name).value_or(0);
}
template <typename Row>
void read_total(const H5::Group& g, const char* name, std::vector<Row>& rows) {
  rows = read_table<Row>(h5::open_group(g, name));
}

}  // namespace

void write_timing(const H5::Group& root, const std::vector<TimingSegment>& segments) {
  if (segments.empty()) return;
  const H5::Group timing = h5::group(root, "timing");
  for (size_t i = 0; i < segments.size(); ++i) {
    const H5::Group g = h5::group(timing, fmt::format("{:03d}", i));
    for_each_field<TimingSegment>(
        [&](const auto& field) { write_total(g, field.name, segments[i].*field.member); });
  }
}

std::vector<TimingSegment> read_timing(const H5::Group& root) {
  if (!h5::has(root, "timing")) return {};
  const H5::Group timing = h5::open_group(root, "timing");
  std::vector<std::string> names = h5::children(timing);
  // Numeric order: a thousandth segment's name is four digits long.
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  std::vector<TimingSegment> segments;
  for (const std::string& name : names) {
    const H5::Group g = h5::open_group(timing, name);
    TimingSegment& s = segments.emplace_back();
    for_each_field<TimingSegment>([&](const auto& field) { read_total(g, field.name, s.*field.member); });
  }
  return segments;
}

}  // namespace qsweep
