#pragma once
// How many stories a CoQA file holds, for `plan`. Deliberately minimal (the evaluation code has
// the full loader); it accepts the official {"version", "data": [...]} file and a bare list.
#include <cstddef>
#include <string>

namespace qsweep {

size_t count_coqa_stories(const std::string& path);

}  // namespace qsweep
