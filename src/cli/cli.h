#pragma once
// Each subcommand lives in src/cli_<name>.cpp and registers itself on the app here.
#include "qsweep/util/dtype.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace qsweep::cli {

// A bad input: a job file, store or model refused, or a command line qsweep cannot parse
// (docs/reliability.md).
inline constexpr int kExitBadInput = 2;

// Prints a CLI11 parse error as "qsweep: usage error: <what>" with the fix (the option meant,
// where a typo away, and the --help to read) and returns kExitBadInput.
int usage_error(const CLI::App& app, const CLI::ParseError& e);

// The deprecated spellings a command line used. They are parsed before the command sets up its
// logging, so the command calls warn() once it has.
struct Deprecations {
  std::vector<std::string> used;  // "--logits-out is deprecated; use --out"
  void warn() const;
};
// `old_name` as an old spelling of the string option `current` (bound to `value`), listed apart
// in --help: it still works, and is noted in `deprecations`. Both refer to the command's arguments, which live as
// long as the app.
void add_deprecated_option(CLI::App* cmd, const std::string& old_name, CLI::Option* current,
                           std::string& value, Deprecations& deprecations);
// The same for a flag: `old_name` sets `value` as `current` does.
void add_deprecated_flag(CLI::App* cmd, const std::string& old_name, CLI::Option* current,
                         bool& value, Deprecations& deprecations);

// Logging for single-process commands: console only, at the level the user asked for.
void init_command_logging(bool verbose);

// An integer option that must be at least `min`: "must be an integer >= 1, got 0".
CLI::Validator at_least(long long min);

// --dtype, parsed into `dtype` and checked against util/dtype.h's names.
CLI::Option* add_dtype_option(CLI::App* cmd, DType& dtype, const std::string& help);
// --dtype of a command that runs a model directory (eval, bench): "auto" (the default) or one
// of util/dtype.h's names or Hugging Face's, into `name` for compute_dtype() once the model's
// config.json is read.
CLI::Option* add_compute_dtype_option(CLI::App* cmd, std::string& name);
// --dtype auto, as lm-eval's Hugging Face backend defaults it: the dtype the checkpoint was saved
// in (config.json's torch_dtype; for a quantized checkpoint that of its unquantized tensors, the
// dtype its kernels compute in) on a GPU. On the CPU auto means float32: half-precision matrix
// products there are slow, and float32 is what the CPU results elsewhere are checked in.
DType compute_dtype(const std::string& name, const std::string& torch_dtype, bool on_gpu);

// Every command below, --version, and one command required: the whole app, for main and tests.
void add_commands(CLI::App& app);

// `qsweep run JOB.yaml`: the sweep, under mpirun/srun.
void add_run(CLI::App& app);
// `qsweep plan JOB.yaml`: the configs and units a sweep would run and what its store holds.
void add_plan(CLI::App& app);
// `qsweep show STORE.h5`: the configs x metrics table, errors and missing units of a store.
void add_show(CLI::App& app);
// `qsweep eval`: one model and config over a CoQA file.
void add_eval(CLI::App& app);
// `qsweep bench`: the benchmark unit on one model and dtype, as JSON.
void add_bench(CLI::App& app);
// `qsweep generate`: greedy continuations, also for parity checks.
void add_generate(CLI::App& app);
// `qsweep tokenize`: text to ids (and back) with a model's tokenizer.
void add_tokenize(CLI::App& app);
// `qsweep make-model`: a random-init model as a Hugging Face directory.
void add_make_model(CLI::App& app);
// `qsweep quantize`: one config applied to a model, written as a pre-quantized checkpoint.
void add_quantize(CLI::App& app);

}  // namespace qsweep::cli
