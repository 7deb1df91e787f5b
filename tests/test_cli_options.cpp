// The qsweep app as CLI11 holds it, walked option by option: what --help shows comes from here.
#include "cli/cli.h"

#include <gtest/gtest.h>

#include <string>

namespace {

const CLI::App& app() {
  static CLI::App* const made = [] {
    auto* a = new CLI::App("qsweep");
    qsweep::cli::add_commands(*a);
    return a;
  }();
  return *made;
}

}  // namespace

TEST(CliOptions, EveryOptionOfEveryCommandHasADescription) {
  const auto commands = app().get_subcommands({});
  ASSERT_EQ(commands.size(), 9u);
  size_t options = 0;
  for (const CLI::App* command : commands) {
    EXPECT_FALSE(command->get_description().empty()) << command->get_name();
    for (const CLI::Option* o : command->get_options()) {
      ++options;
      EXPECT_FALSE(o->get_description().empty()) << command->get_name() << " " << o->get_name();
    }
  }
  EXPECT_GT(options, 60u);  // the walk reached the options, not only the commands
}

// An old spelling says which one to use, and no command lists it as current.
TEST(CliOptions, DeprecatedSpellingsNameTheCurrentOne) {
  size_t deprecated = 0;
  for (const CLI::App* command : app().get_subcommands({})) {
    for (const CLI::Option* o : command->get_options()) {
      const std::string& d = o->get_description();
      const bool is_deprecated = d.rfind("Deprecated spelling of --", 0) == 0;
      EXPECT_EQ(is_deprecated, o->get_group().rfind("Deprecated", 0) == 0)
          << command->get_name() << " " << o->get_name();
      if (!is_deprecated) continue;
      ++deprecated;
      const std::string current = d.substr(std::string("Deprecated spelling of ").size());
      EXPECT_NE(command->get_option_no_throw(current), nullptr)
          << command->get_name() << " " << o->get_name() << " -> " << current;
    }
  }
  EXPECT_EQ(deprecated, 4u);  // generate --logits-out, --no-special; tokenize --no-special; eval --output-path
}

// One spelling per meaning: where two commands take the same kind of path, they name it alike.
TEST(CliOptions, OutputPathsAreSpelledOut) {
  for (const char* name : {"eval", "bench", "generate", "make-model", "quantize"}) {
    const CLI::App* command = app().get_subcommand(name);
    const CLI::Option* out = command->get_option_no_throw("--out");
    ASSERT_NE(out, nullptr) << name;
    EXPECT_NE(out->get_group().rfind("Deprecated", 0), 0u) << name;
  }
  for (const char* name : {"run", "plan"})
    EXPECT_NE(app().get_subcommand(name)->get_option_no_throw("--store"), nullptr) << name;
}

// eval's and bench's --dtype auto: the checkpoint's own dtype on a GPU (a quantized checkpoint's
// fp16 where its scales are fp16, not a bf16 that would cast around every GEMV), fp32 on the CPU.
TEST(CliOptions, DtypeAutoIsTheCheckpointsOnAGpuAndFloat32OnTheCpu) {
  using qsweep::DType;
  using qsweep::cli::compute_dtype;
  EXPECT_EQ(compute_dtype("auto", "float16", true), DType::fp16);
  EXPECT_EQ(compute_dtype("auto", "bfloat16", true), DType::bf16);
  EXPECT_EQ(compute_dtype("auto", "float16", false), DType::fp32);
  EXPECT_EQ(compute_dtype("auto", "int8", true), DType::fp32);  // not a compute dtype
  EXPECT_EQ(compute_dtype("bf16", "float16", true), DType::bf16);
  EXPECT_EQ(compute_dtype("float16", "bfloat16", false), DType::fp16);
  for (const char* command : {"eval", "bench"}) {
    const CLI::Option* o = app().get_subcommand(command)->get_option("--dtype");
    EXPECT_EQ(o->get_default_str(), "auto") << command;
  }
}
