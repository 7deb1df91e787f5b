#pragma once
// The `configs:` list of a job file: inline configs, presets and grids, expanded to PrepConfigs.
// Private to the spec parser.
#include "qsweep/sweep/sweep_spec.h"

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace qsweep {

// `list` is the value of `configs:` in `file`; presets are looked up in `config_dirs` in order.
std::vector<PrepConfig> parse_configs(const YAML::Node& list, const YAML::Node& parent,
                                      const std::string& file,
                                      const std::vector<std::string>& config_dirs);

}  // namespace qsweep
