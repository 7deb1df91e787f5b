// qsweep: one executable, one subcommand per task. Errors from any command are caught here once,
// printed as one line, and turned into exit code 2 (1 is kept for "ran, but a unit failed"); so
// is a command line CLI11 refuses, whose own codes (100 and up) docs/reliability.md does not list.
#include "cli.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep_version.h"

#include <fmt/format.h>

#include <csignal>
#include <iostream>
#include <map>

namespace qsweep::cli {
void init_command_logging(bool verbose) {
  LogOptions options;
  options.level = verbose ? LogLevel::debug : LogLevel::info;
  init_logging(options);
}

CLI::Validator at_least(long long min) {
  return CLI::Validator(
      [min](std::string& value) -> std::string {
        long long n = 0;
        size_t used = 0;
        try {
          n = std::stoll(value, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == value.size() && !value.empty() && n >= min) return "";
        return fmt::format("must be an integer >= {}, got {}", min, value);
      },
      fmt::format("INT>={}", min));
}

CLI::Option* add_dtype_option(CLI::App* cmd, DType& dtype, const std::string& help) {
  std::map<std::string, DType> names;
  for (DType d : kAllDTypes) names[dtype_name(d)] = d;
  return cmd->add_option("--dtype", dtype, help)
      ->transform(CLI::CheckedTransformer(names))
      ->default_str(dtype_name(dtype));
}
}  // namespace qsweep::cli

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) write() then fails with EFBIG, which the store reports
  // like a full disk, instead of the kernel killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"qsweep: quantization sweeps of Llama-family models on HPC clusters"};
  app.set_version_flag("--version", std::string(QSWEEP_VERSION " (" QSWEEP_GIT_HASH ")"));
  app.require_subcommand(1);
  qsweep::cli::add_run(app);
  qsweep::cli::add_plan(app);
  qsweep::cli::add_show(app);
  qsweep::cli::add_eval(app);
  qsweep::cli::add_bench(app);
  qsweep::cli::add_generate(app);
  qsweep::cli::add_tokenize(app);
  qsweep::cli::add_make_model(app);
  qsweep::cli::add_quantize(app);
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
