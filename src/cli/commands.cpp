// The qsweep app: its commands, the version flag, and the option helpers the commands share.
#include "cli.h"
#include "qsweep/util/log.h"
#include "qsweep_version.h"

#include <fmt/format.h>

#include <map>
#include <vector>

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
CLI::Option* add_compute_dtype_option(CLI::App* cmd, std::string& name) {
  std::vector<std::string> names = {"auto"};
  for (DType d : kAllDTypes) names.insert(names.end(), {dtype_name(d), hf_dtype_name(d)});
  return cmd
      ->add_option("--dtype", name,
                   "Compute dtype: auto (the checkpoint's torch_dtype on a GPU, fp32 on the CPU), "
                   "fp32, fp16 or bf16")
      ->check(CLI::IsMember(names))
      ->capture_default_str();
}

DType compute_dtype(const std::string& name, const std::string& torch_dtype, bool on_gpu) {
  if (name != "auto") return *parse_dtype(name);
  if (!on_gpu) return DType::fp32;
  return parse_dtype(torch_dtype).value_or(DType::fp32);
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

