// How the command line is spelled and refused: old spellings that still work, and CLI11's parse
// errors turned into one message that names the flag and what to do, with exit code 2.
#include "cli.h"
#include "qsweep/util/log.h"
#include "qsweep/util/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <limits>

namespace qsweep::cli {
namespace {

// The --help group of old spellings. A visible one: CLI11 names the options of a hidden group ""
// in its error messages.
constexpr const char* kDeprecatedGroup = "Deprecated spellings (still work, with a warning)";

std::string deprecation_note(const std::string& old_name, const CLI::Option* current) {
  return fmt::format("{} is deprecated; use {}", old_name, current->get_name());
}

// The closest of `names` to `typed`, if a typo away (a third of its length at most).
std::string closest(const std::string& typed, const std::vector<std::string>& names) {
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const std::string& name : names) {
    const size_t d = edit_distance(typed, name);
    if (d < best_distance) best = name, best_distance = d;
  }
  return best_distance <= std::max<size_t>(2, typed.size() / 3) ? best : "";
}

// The command being parsed when CLI11 gave up: the deepest subcommand on the line.
const CLI::App* command_of(const CLI::App& app) {
  const CLI::App* at = &app;
  for (bool deeper = true; deeper;) {
    const auto parsed = at->get_subcommands();
    deeper = !parsed.empty();
    if (deeper) at = parsed.front();
  }
  return at;
}

// The long names of a command's options, deprecated spellings left out.
std::vector<std::string> option_names(const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::Option* o : command.get_options())
    if (o->get_group() != kDeprecatedGroup)
      for (const std::string& name : o->get_lnames()) names.push_back("--" + name);
  return names;
}

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  return names;
}

// What to do about the error: the spelling meant, where it is unambiguous, and where to look.
std::string fix_for(const CLI::App& app, const CLI::App& command) {
  const std::string help =
      &command == &app ? "qsweep --help" : fmt::format("qsweep {} --help", command.get_name());
  std::vector<std::string> hints;
  if (&command == &app) {
    for (const std::string& typed : app.remaining())
      if (const std::string meant = closest(typed, command_names(app)); !meant.empty())
        hints.push_back(fmt::format("'{}' is not a command; did you mean '{}'?", typed, meant));
    return fmt::format("{}`{}` lists the commands", hints.empty() ? "" : hints.front() + "\n  ",
                       help);
  }
  for (const std::string& typed : command.remaining()) {
    if (typed.rfind("--", 0) != 0) continue;
    const std::string flag = typed.substr(0, typed.find('='));
    if (const std::string meant = closest(flag, option_names(command)); !meant.empty())
      hints.push_back(fmt::format("{} is not an option of {}; did you mean {}?", flag,
                                  command.get_name(), meant));
  }
  std::string fix;
  for (const std::string& h : hints) fix += h + "\n  ";
  return fix + fmt::format("`{}` lists its options", help);
}

}  // namespace

void Deprecations::warn() const {
  for (const std::string& note : used) log_warning("{}", note);
}

void add_deprecated_option(CLI::App* cmd, const std::string& old_name, CLI::Option* current,
                           std::string& value, Deprecations& deprecations) {
  const std::string note = deprecation_note(old_name, current);
  cmd->add_option(old_name, value, "Deprecated spelling of " + current->get_name())
      ->group(kDeprecatedGroup)
      ->excludes(current)
      ->each([&deprecations, note](const std::string&) { deprecations.used.push_back(note); });
}

void add_deprecated_flag(CLI::App* cmd, const std::string& old_name, CLI::Option* current,
                         bool& value, Deprecations& deprecations) {
  const std::string note = deprecation_note(old_name, current);
  cmd->add_flag_callback(old_name, [&value, &deprecations, note] {
       value = true;
       deprecations.used.push_back(note);
     }, "Deprecated spelling of " + current->get_name())
      ->group(kDeprecatedGroup)
      ->excludes(current);
}

int usage_error(const CLI::App& app, const CLI::ParseError& e) {
  std::cerr << "qsweep: usage error: " << e.what() << "\n  " << fix_for(app, *command_of(app))
            << "\n";
  return kExitBadInput;
}

}  // namespace qsweep::cli
