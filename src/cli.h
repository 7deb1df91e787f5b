#pragma once
// Each subcommand lives in src/cli_<name>.cpp and registers itself on the app here.
#include <CLI/CLI.hpp>

namespace qsweep::cli {

// Logging for single-process commands: console only, at the level the user asked for.
void init_command_logging(bool verbose);

}  // namespace qsweep::cli

namespace qsweep::cli {
void add_make_model(CLI::App& app);
void add_generate(CLI::App& app);
void add_bench(CLI::App& app);
void add_run(CLI::App& app);
void add_eval(CLI::App& app);
}  // namespace qsweep::cli
