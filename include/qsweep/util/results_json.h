#pragma once
// JSON forms of the result records: how workers send them to rank 0 over MPI, and how
// `qsweep eval --log-samples` and `qsweep bench` write them.
#include "qsweep/util/results.h"

#include <nlohmann/json.hpp>

namespace qsweep {

void to_json(nlohmann::json& j, const SampleRecord& r);
void from_json(const nlohmann::json& j, SampleRecord& r);
void to_json(nlohmann::json& j, const BenchRecord& r);
void from_json(const nlohmann::json& j, BenchRecord& r);
void to_json(nlohmann::json& j, const UnitError& r);
void from_json(const nlohmann::json& j, UnitError& r);
void to_json(nlohmann::json& j, const SanityOutput& r);
void from_json(const nlohmann::json& j, SanityOutput& r);
void to_json(nlohmann::json& j, const PrepareRecord& r);
void from_json(const nlohmann::json& j, PrepareRecord& r);
void to_json(nlohmann::json& j, const UnitResult& r);
void from_json(const nlohmann::json& j, UnitResult& r);

}  // namespace qsweep
