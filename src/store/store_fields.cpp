#include "store_fields.h"

#include "store_layout.h"

namespace qsweep {

std::string to_column(const std::vector<std::string>& golds) {
  std::string joined;
  for (size_t i = 0; i < golds.size(); ++i) {
    if (golds[i].find(kGoldSeparator) != std::string::npos)
      fail("gold answer '{}' contains the store's separator U+001F", golds[i]);
    joined += (i ? std::string(1, kGoldSeparator) : "") + golds[i];
  }
  return joined;
}

void from_column(const std::string& joined, std::vector<std::string>& golds) {
  golds.clear();
  if (joined.empty()) return;
  size_t start = 0;
  for (size_t sep = joined.find(kGoldSeparator); sep != std::string::npos;
       sep = joined.find(kGoldSeparator, start)) {
    golds.push_back(joined.substr(start, sep - start));
    start = sep + 1;
  }
  golds.push_back(joined.substr(start));
}

std::string to_column(UnitKind kind) { return unit_kind_name(kind); }
std::string to_column(UnitStatus status) { return unit_status_name(status); }

void from_column(const std::string& stored, UnitKind& kind) {
  const auto parsed = parse_unit_kind(stored);
  if (!parsed) fail("unknown unit kind '{}'", stored);
  kind = *parsed;
}

void from_column(const std::string& stored, UnitStatus& status) {
  for (UnitStatus s : {UnitStatus::todo, UnitStatus::done, UnitStatus::failed})
    if (unit_status_name(s) == stored) {
      status = s;
      return;
    }
  fail("unknown unit status '{}'", stored);
}

void check_rows(const H5::Group& g, const std::string& name, size_t rows, size_t expected) {
  if (rows != expected)
    fail("store '{}': '{}/{}' has {} rows, other columns of the table have {}", g.getFileName(),
         g.getObjName(), name, rows, expected);
}

}  // namespace qsweep
