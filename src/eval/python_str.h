#pragma once
// The few Python str behaviours that lm-eval's CoQA scoring relies on, reproduced on code points so
// a prediction scores here exactly as it does under Python: str.lower() (full Unicode, Final_Sigma
// and U+0130 included), str.isspace() as str.strip()/str.split() use it, and the re module's
// Unicode \w. The character data is generated from Python itself (scripts/gen_unicode_tables.py).
#include <string>
#include <string_view>
#include <vector>

namespace qsweep::py {

bool is_space(char32_t c);
bool is_word(char32_t c);

std::u32string lower(std::u32string_view s);
std::u32string strip(std::u32string_view s);
std::vector<std::u32string> split(std::u32string_view s);

}  // namespace qsweep::py
