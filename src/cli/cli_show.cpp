// `qsweep show STORE.h5`: what a store holds, readable at a glance, while a sweep runs or after.
#include "cli.h"
#include "qsweep/store/store.h"
#include "qsweep/util/error.h"

#include <filesystem>
#include <iostream>
#include <memory>

namespace qsweep::cli {
namespace {

struct ShowArgs {
  std::string store;
  std::string format = "text";
  bool wide = false;
};

// A missing or unreadable store is an error of the command (exit 2), said in one line.
Results read_for_show(const std::string& path) {
  if (!std::filesystem::exists(path))
    fail("no results store at '{}': give the .h5 file a sweep writes (the job's `store`, or "
         "`qsweep run --store`)", path);
  try {
    return read_store(path);
  } catch (const std::exception& e) {
    fail("'{}' cannot be read as a qsweep results store: {}", path, e.what());
  }
}

void show(const ShowArgs& a) {
  const Results results = read_for_show(a.store);
  const TableFormat format = *parse_table_format(a.format);
  if (format == TableFormat::text)
    std::cout << format_store_report(a.store, results, a.wide);
  else
    std::cout << format_summary_table(results, format, a.wide);
}

}  // namespace

void add_show(CLI::App& app) {
  auto a = std::make_shared<ShowArgs>();
  CLI::App* cmd = app.add_subcommand("show", "Print a results store: metrics, errors, missing units");
  cmd->add_option("store", a->store, "Results store (.h5)")->required();
  cmd->add_option("--format", a->format,
                  "text (the report, 120 columns), md (Markdown table), csv or json (raw values)")
      ->check(CLI::IsMember({"text", "md", "csv", "json"}))->capture_default_str();
  cmd->add_flag("--wide", a->wide, "Every column in full: intervals of EM and the deltas, prefill, "
                                   "units done/failed/todo, whole config names");
  cmd->callback([a] { show(*a); });
}

}  // namespace qsweep::cli
