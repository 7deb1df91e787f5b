#include "qsweep/sweep/protocol.h"

#include "qsweep/util/error.h"
#include "qsweep/util/results_json.h"

namespace qsweep {
namespace {

using nlohmann::json;

std::string wire(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

json unit_json(const WorkUnit& u) {
  return {{"key", u.key},     {"config", u.config}, {"kind", unit_kind_name(u.kind)},
          {"shard", u.shard}, {"begin", u.begin},   {"end", u.end}};
}

WorkUnit unit_from_json(const json& j) {
  WorkUnit u;
  u.key = j.at("key");
  u.config = j.at("config");
  const std::string kind = j.at("kind");
  const auto parsed = parse_unit_kind(kind);
  if (!parsed) fail("message for unit '{}' has unknown kind '{}'", u.key, kind);
  u.kind = *parsed;
  u.shard = j.at("shard");
  u.begin = j.at("begin");
  u.end = j.at("end");
  return u;
}

}  // namespace

std::string encode_report(const WorkerReport& r) {
  json j = {{"result", nullptr}, {"held", r.held}, {"leaving", r.leaving},
            {"device", r.device}, {"failure", r.failure},
            {"startup_seconds", r.startup_seconds}, {"waited_seconds", r.waited_seconds}};
  if (r.result) j["result"] = *r.result;
  return wire(j);
}

WorkerReport decode_report(const std::string& text) {
  const json j = json::parse(text);
  WorkerReport r;
  if (!j.at("result").is_null()) r.result = j.at("result").get<UnitResult>();
  r.held = j.at("held");
  r.leaving = j.at("leaving");
  r.device = j.at("device");
  r.failure = j.at("failure");
  r.startup_seconds = j.at("startup_seconds");
  r.waited_seconds = j.at("waited_seconds");
  return r;
}

std::string encode_assignment(const Assignment& a) {
  return wire(a.unit ? json{{"unit", unit_json(*a.unit)}} : json{{"stop", true}});
}

Assignment decode_assignment(const std::string& text) {
  const json j = json::parse(text);
  Assignment a;
  if (j.contains("unit")) a.unit = unit_from_json(j.at("unit"));
  return a;
}

}  // namespace qsweep
