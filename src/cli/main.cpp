// qsweep: one executable, one subcommand per task. Errors from any command are caught here once,
// printed as one line, and turned into exit code 2 (1 is kept for "ran, but a unit failed"); so
// is a command line CLI11 refuses, whose own codes (100 and up) docs/reliability.md does not list.
#include "cli.h"
#include "qsweep/util/error.h"

#include <csignal>
#include <iostream>

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) write() then fails with EFBIG, which the store reports
  // like a full disk, instead of the kernel killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"qsweep: quantization sweeps of Llama-family models on HPC clusters"};
  qsweep::cli::add_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command's own exit code (run, plan)
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" of code 0.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    return qsweep::cli::usage_error(app, e);
  } catch (const qsweep::Error& e) {
    std::cerr << "qsweep: error: " << e.what() << "\n";
    return qsweep::cli::kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "qsweep: unexpected error: " << e.what() << "\n";
    return qsweep::cli::kExitBadInput;
  }
  return 0;
}
