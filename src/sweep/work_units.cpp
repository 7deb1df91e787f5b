#include "qsweep/sweep/sweep_spec.h"

#include <fmt/format.h>

#include <algorithm>

namespace qsweep {

std::string unit_kind_name(UnitKind kind) {
  switch (kind) {
    case UnitKind::prepare: return "prepare";
    case UnitKind::sanity: return "sanity";
    case UnitKind::coqa: return "coqa";
    case UnitKind::bench: return "bench";
  }
  return "?";
}

std::optional<UnitKind> parse_unit_kind(std::string_view name) {
  for (UnitKind kind : kAllUnitKinds)
    if (name == unit_kind_name(kind)) return kind;
  return std::nullopt;
}

std::vector<WorkUnit> expand_units(const SweepSpec& spec, size_t n_stories) {
  const EvalSpec& e = spec.evaluation;
  const size_t n = e.limit ? std::min(n_stories, static_cast<size_t>(*e.limit)) : n_stories;
  const std::vector<IndexRange> shards =
      e.enabled ? shard_stories(n, static_cast<size_t>(e.shard_size)) : std::vector<IndexRange>{};
  const bool sanity = e.enabled && (!e.sanity_prompts.empty() || !e.perplexity_text.empty());
  std::vector<WorkUnit> units;
  for (const PrepConfig& config : spec.configs) {
    if (needs_calibration(config.quant.method))
      units.push_back({config.name + "/prepare", config.name, UnitKind::prepare, -1, 0, 0});
    if (sanity)
      units.push_back({config.name + "/sanity", config.name, UnitKind::sanity, -1, 0, 0});
    for (size_t i = 0; i < shards.size(); ++i)
      units.push_back({fmt::format("{}/coqa/{:04d}", config.name, i), config.name, UnitKind::coqa,
                       static_cast<int>(i), shards[i].begin, shards[i].end});
    if (spec.benchmarks.enabled)
      units.push_back({config.name + "/bench", config.name, UnitKind::bench, -1, 0, 0});
  }
  return units;
}

}  // namespace qsweep
