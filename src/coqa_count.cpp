#include "coqa_count.h"

#include "qsweep/error.h"
#include "qsweep/text.h"

#include <nlohmann/json.hpp>

namespace qsweep {

size_t count_coqa_stories(const std::string& path) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("CoQA file '{}' is not valid JSON: {}", path, e.what());
  }
  const nlohmann::json* stories = &doc;
  if (doc.is_object() && doc.contains("data")) stories = &doc["data"];
  if (!stories->is_array())
    fail("CoQA file '{}' has no list of stories (expected {{\"data\": [...]}} or a list)", path);
  return stories->size();
}

}  // namespace qsweep
