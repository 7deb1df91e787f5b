// `qsweep show STORE.h5`: what a store holds, readable at a glance, while a sweep runs or after.
#include "cli.h"
#include "qsweep/store/store.h"

#include <iostream>
#include <memory>

namespace qsweep::cli {

void add_show(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* show = app.add_subcommand("show", "Print a results store: metrics, errors, missing units");
  show->add_option("store", *path, "results store (.h5)")->required()->check(CLI::ExistingFile);
  show->callback([path] { std::cout << format_store_report(*path, read_store(*path)); });
}

}  // namespace qsweep::cli
