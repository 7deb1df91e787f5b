#pragma once
// Each subcommand lives in src/cli_<name>.cpp and registers itself on the app here.
#include <CLI/CLI.hpp>

namespace qsweep::cli {

// Logging for single-process commands: console only, at the level the user asked for.
void init_command_logging(bool verbose);

// `qsweep plan JOB.yaml`: the configs and units a sweep would run and what its store holds.
void add_plan(CLI::App& app);
// `qsweep show STORE.h5`: the configs x metrics table, errors and missing units of a store.
void add_show(CLI::App& app);

}  // namespace qsweep::cli
