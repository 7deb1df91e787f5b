#include "yaml_fields.h"

#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

namespace qsweep::yaml {

namespace {

// yaml-cpp keeps every pair of a mapping but node[key] finds only the first, so a key written
// twice would silently lose its second value; the walk refuses it instead.
void check_unique_keys(const YAML::Node& node, const std::string& file, const std::string& path) {
  if (node.IsSequence())
    for (size_t i = 0; i < node.size(); ++i)
      check_unique_keys(node[i], file, fmt::format("{}[{}]", path, i));
  if (!node.IsMap()) return;
  std::map<std::string, int> seen;  // key -> line of its first occurrence
  for (const auto& item : node) {
    const std::string name = item.first.IsScalar() ? item.first.Scalar() : describe(item.first);
    const std::string key = path.empty() ? name : path + "." + name;
    const auto [first, inserted] = seen.emplace(name, line_of(item.first));
    if (!inserted)
      key_error(file, item.first, key,
                fmt::format("appears twice in the same mapping (first at line {}); keep one",
                            first->second));
    check_unique_keys(item.second, file, key);
  }
}

}  // namespace

YAML::Node parse(const std::string& text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{}:{}: invalid YAML: {}", file, e.mark.line + 1, e.msg);
  }
  check_unique_keys(root, file, "");
  return root;
}

int line_of(const YAML::Node& node, const YAML::Node& fallback) {
  // Missing keys are "zombie" nodes whose Mark() throws, and scalars built in code have none.
  if (node.IsDefined() && node.Mark().line >= 0) return node.Mark().line + 1;
  if (fallback.IsDefined() && fallback.Mark().line >= 0) return fallback.Mark().line + 1;
  return 1;
}

void key_error(const std::string& file, const YAML::Node& at, const std::string& key,
               const std::string& what) {
  fail("{}:{}: key '{}': {}", file, line_of(at), key, what);
}

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "'" + node.Scalar() + "'";
}

Section section(const YAML::Node& node, const std::string& file, const std::string& key) {
  if (!node.IsMap())
    key_error(file, node, key, fmt::format("must be a mapping of keys, got {}", describe(node)));
  return Section{node, file, key.empty() ? "" : key + "."};
}

void check_keys(const Section& s, const std::vector<std::string>& allowed) {
  for (const auto& item : s.node) {
    const std::string name = item.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
    const std::string near = closest_match(name, allowed);
    const std::string hint = near.empty() ? "" : fmt::format("; did you mean '{}'?", near);
    key_error(s.file, item.first, s.key(name),
              fmt::format("unknown key{} (valid here: {})", hint, fmt::join(allowed, ", ")));
  }
}

YAML::Node require(const Section& s, const std::string& name) {
  const YAML::Node n = s.get(name);
  if (!n.IsDefined() || n.IsNull())
    key_error(s.file, s.node, s.key(name), "is required but missing");
  return n;
}

std::string as_string(const YAML::Node& n, const std::string& file, const std::string& key) {
  if (!n.IsScalar())
    key_error(file, n, key, fmt::format("must be a string, got {}", describe(n)));
  return n.Scalar();
}

long long as_int(const YAML::Node& n, const std::string& file, const std::string& key) {
  long long value = 0;
  if (!n.IsScalar() || !YAML::convert<long long>::decode(n, value))
    key_error(file, n, key, fmt::format("must be an integer, got {}", describe(n)));
  return value;
}

double as_double(const YAML::Node& n, const std::string& file, const std::string& key) {
  double value = 0;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, value))
    key_error(file, n, key, fmt::format("must be a number, got {}", describe(n)));
  return value;
}

std::string as_choice(const YAML::Node& n, const std::string& file, const std::string& key,
                      const std::vector<std::string>& choices) {
  const std::string value = as_string(n, file, key);
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  const std::string near = closest_match(value, choices);
  const std::string hint = near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near);
  key_error(file, n, key,
            fmt::format("must be one of {}, got '{}'{}", fmt::join(choices, ", "), value, hint));
}

bool as_bool(const YAML::Node& n, const std::string& file, const std::string& key) {
  bool value = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value))
    key_error(file, n, key, fmt::format("must be true or false, got {}", describe(n)));
  return value;
}

std::vector<std::string> as_strings(const YAML::Node& n, const std::string& file,
                                    const std::string& key) {
  if (!n.IsSequence())
    key_error(file, n, key, fmt::format("must be a list of strings, got {}", describe(n)));
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i)
    out.push_back(as_string(n[i], file, fmt::format("{}[{}]", key, i)));
  return out;
}

std::vector<long long> as_ints(const YAML::Node& n, const std::string& file,
                               const std::string& key) {
  if (!n.IsSequence())
    key_error(file, n, key, fmt::format("must be a list of integers, got {}", describe(n)));
  std::vector<long long> out;
  for (size_t i = 0; i < n.size(); ++i)
    out.push_back(as_int(n[i], file, fmt::format("{}[{}]", key, i)));
  return out;
}

std::string get_string(const Section& s, const std::string& name, const std::string& fallback) {
  return s.has(name) ? as_string(s.get(name), s.file, s.key(name)) : fallback;
}

static std::string bound(int min) {
  return min == 1 ? "a positive integer" : fmt::format("an integer >= {}", min);
}

int get_int(const Section& s, const std::string& name, int fallback, int min) {
  if (!s.has(name)) return fallback;
  const long long value = as_int(s.get(name), s.file, s.key(name));
  if (value < min)
    key_error(s.file, s.get(name), s.key(name),
              fmt::format("must be {}, got {}", bound(min), value));
  // Counts past this are typos, and would overflow the sizes computed from them.
  if (value > 1'000'000'000)
    key_error(s.file, s.get(name), s.key(name),
              fmt::format("must be at most 1000000000, got {}", value));
  return static_cast<int>(value);
}

bool get_bool(const Section& s, const std::string& name, bool fallback) {
  return s.has(name) ? as_bool(s.get(name), s.file, s.key(name)) : fallback;
}

std::vector<std::string> get_strings(const Section& s, const std::string& name,
                                     const std::vector<std::string>& fallback) {
  return s.has(name) ? as_strings(s.get(name), s.file, s.key(name)) : fallback;
}

std::vector<int> get_ints(const Section& s, const std::string& name,
                          const std::vector<int>& fallback, int min) {
  if (!s.has(name)) return fallback;
  std::vector<int> out;
  for (long long value : as_ints(s.get(name), s.file, s.key(name))) {
    if (value < min || value > 1'000'000'000)
      key_error(s.file, s.get(name), s.key(name),
                fmt::format("every entry must be {}, got {}", bound(min), value));
    out.push_back(static_cast<int>(value));
  }
  return out;
}

std::string get_choice(const Section& s, const std::string& name, const std::string& fallback,
                       const std::vector<std::string>& choices) {
  return s.has(name) ? as_choice(s.get(name), s.file, s.key(name), choices) : fallback;
}

// ${VAR} and ${VAR:-default}, as a shell expands them, so one job file serves several clusters.
std::string expand_env(const std::string& value, const std::string& file, const YAML::Node& node,
                       const std::string& key) {
  std::string out;
  size_t pos = 0;
  for (size_t open = value.find("${"); open != std::string::npos;
       open = value.find("${", pos)) {
    const size_t close = value.find('}', open);
    if (close == std::string::npos)
      key_error(file, node, key,
                      fmt::format("unterminated '${{' in '{}'", value));
    const std::string inner = value.substr(open + 2, close - open - 2);
    const size_t dash = inner.find(":-");
    const std::string var = inner.substr(0, dash);
    const char* set = std::getenv(var.c_str());
    out += value.substr(pos, open - pos);
    if (set && *set) {
      out += set;
    } else if (dash != std::string::npos) {
      out += inner.substr(dash + 2);
    } else {
      key_error(file, node, key,
                      fmt::format("environment variable {} is not set (write ${{{}:-DEFAULT}} "
                                  "for a fallback)",
                                  var, var));
    }
    pos = close + 1;
  }
  return out + value.substr(pos);
}


}  // namespace qsweep::yaml
