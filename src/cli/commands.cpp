// The qsweep app: its commands, the version flag, and the option helpers the commands share.
#include "cli.h"
#include "qsweep/util/log.h"
#include "qsweep_version.h"

#include <fmt/format.h>

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
void add_commands(CLI::App& app) {
  app.set_version_flag("--version", std::string(QSWEEP_VERSION " (" QSWEEP_GIT_HASH ")"));
  app.require_subcommand(1);
  add_run(app);
  add_plan(app);
  add_show(app);
  add_eval(app);
  add_bench(app);
  add_generate(app);
  add_tokenize(app);
  add_make_model(app);
  add_quantize(app);
}

}  // namespace qsweep::cli

