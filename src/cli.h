#pragma once
// Each subcommand lives in src/cli_<name>.cpp and registers itself on the app here.
#include <CLI/CLI.hpp>

namespace qsweep::cli {

// Logging for single-process commands: console only, at the level the user asked for.
void init_command_logging(bool verbose);

// `qsweep tokenize`: text on stdin to ids on stdout (or ids to text with --decode).
void add_tokenize_command(CLI::App& app);

}  // namespace qsweep::cli
