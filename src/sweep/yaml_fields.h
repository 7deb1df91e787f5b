#pragma once
// Typed reads of YAML fields whose errors all read "FILE:LINE: key 'a.b': what is wrong", so each
// part of the sweep spec checks a field in one line. Private to the spec parser.
#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

namespace qsweep::yaml {

// A YAML mapping, the file it came from and its dotted key path ("" or "evaluation.").
struct Section {
  YAML::Node node;
  std::string file;
  std::string prefix;

  std::string key(const std::string& name) const { return prefix + name; }
  bool has(const std::string& name) const { return node[name].IsDefined(); }
  YAML::Node get(const std::string& name) const { return node[name]; }
};

// Parses YAML text; syntax errors become "FILE:LINE: invalid YAML: ...", and a key written twice
// in one mapping "FILE:LINE: key 'a.b': appears twice ..." (yaml-cpp would keep the first).
YAML::Node parse(const std::string& text, const std::string& file);

// 1-based line of a node; nodes that do not exist report the line of `fallback`.
int line_of(const YAML::Node& node, const YAML::Node& fallback = YAML::Node());

[[noreturn]] void key_error(const std::string& file, const YAML::Node& at, const std::string& key,
                            const std::string& what);

// `node` must be a mapping; `key` names it in the error ("evaluation", "configs[2]").
Section section(const YAML::Node& node, const std::string& file, const std::string& key);
// Every key of the section must be one of `allowed`; unknown keys get a "did you mean".
void check_keys(const Section& s, const std::vector<std::string>& allowed);
// The node of a key that must be present.
YAML::Node require(const Section& s, const std::string& name);

// How a value looks in an error message: the scalar itself, or "a list" / "a mapping".
std::string describe(const YAML::Node& node);

std::string as_string(const YAML::Node& n, const std::string& file, const std::string& key);
// ${VAR} and ${VAR:-default} in a value, as a shell expands them; errors point at node.
std::string expand_env(const std::string& value, const std::string& file, const YAML::Node& node,
                       const std::string& key);
long long as_int(const YAML::Node& n, const std::string& file, const std::string& key);
double as_double(const YAML::Node& n, const std::string& file, const std::string& key);
bool as_bool(const YAML::Node& n, const std::string& file, const std::string& key);
// One of `choices`, with a "did you mean" when close to one.
std::string as_choice(const YAML::Node& n, const std::string& file, const std::string& key,
                      const std::vector<std::string>& choices);
std::vector<std::string> as_strings(const YAML::Node& n, const std::string& file,
                                    const std::string& key);
std::vector<long long> as_ints(const YAML::Node& n, const std::string& file,
                               const std::string& key);

// Optional fields with their default; integers must be at least `min`.
std::string get_string(const Section& s, const std::string& name, const std::string& fallback);
int get_int(const Section& s, const std::string& name, int fallback, int min);
bool get_bool(const Section& s, const std::string& name, bool fallback);
std::vector<std::string> get_strings(const Section& s, const std::string& name,
                                     const std::vector<std::string>& fallback);
std::vector<int> get_ints(const Section& s, const std::string& name,
                          const std::vector<int>& fallback, int min);
// One of `choices`, with a "did you mean" when close to one.
std::string get_choice(const Section& s, const std::string& name, const std::string& fallback,
                       const std::vector<std::string>& choices);

}  // namespace qsweep::yaml
