#include "qsweep/util/results_json.h"

namespace qsweep {

using nlohmann::json;

void to_json(json& j, const SampleRecord& r) {
  j = {{"id", r.id},
       {"turn", r.turn},
       {"source", r.source},
       {"prompt_sha256", r.prompt_sha256},
       {"prediction", r.prediction},
       {"golds", r.golds},
       {"em", r.em},
       {"f1", r.f1},
       {"prompt_tokens", r.prompt_tokens},
       {"generated_tokens", r.generated_tokens},
       {"stop_reason", r.stop_reason}};
}

void from_json(const json& j, SampleRecord& r) {
  j.at("id").get_to(r.id);
  j.at("turn").get_to(r.turn);
  j.at("source").get_to(r.source);
  j.at("prompt_sha256").get_to(r.prompt_sha256);
  j.at("prediction").get_to(r.prediction);
  j.at("golds").get_to(r.golds);
  j.at("em").get_to(r.em);
  j.at("f1").get_to(r.f1);
  j.at("prompt_tokens").get_to(r.prompt_tokens);
  j.at("generated_tokens").get_to(r.generated_tokens);
  j.at("stop_reason").get_to(r.stop_reason);
}

void to_json(json& j, const BenchRecord& r) {
  json throughput = json::object();
  for (const auto& [batch, samples] : r.throughput_tokens_per_s)
    throughput[std::to_string(batch)] = samples;
  j = {{"config", r.config},
       {"device", r.device},
       {"method", r.method},
       {"model_bytes", r.model_bytes},
       {"peak_memory_bytes", r.peak_memory_bytes},
       {"prefill_ms", r.prefill_ms},
       {"decode_ms_per_token", r.decode_ms_per_token},
       {"throughput_tokens_per_s", throughput},
       {"power_w", r.power_w},
       {"bandwidth_gb_s", r.bandwidth_gb_s}};
}

void from_json(const json& j, BenchRecord& r) {
  j.at("config").get_to(r.config);
  j.at("device").get_to(r.device);
  j.at("method").get_to(r.method);
  j.at("model_bytes").get_to(r.model_bytes);
  j.at("peak_memory_bytes").get_to(r.peak_memory_bytes);
  j.at("prefill_ms").get_to(r.prefill_ms);
  j.at("decode_ms_per_token").get_to(r.decode_ms_per_token);
  for (const auto& [batch, samples] : j.at("throughput_tokens_per_s").items())
    r.throughput_tokens_per_s[std::stoi(batch)] = samples.get<std::vector<double>>();
  j.at("power_w").get_to(r.power_w);
  j.at("bandwidth_gb_s").get_to(r.bandwidth_gb_s);
}

void to_json(json& j, const UnitError& r) {
  j = {{"config", r.config}, {"unit", r.unit}, {"rank", r.rank}, {"host", r.host},
       {"message", r.message}};
}

void from_json(const json& j, UnitError& r) {
  j.at("config").get_to(r.config);
  j.at("unit").get_to(r.unit);
  j.at("rank").get_to(r.rank);
  j.at("host").get_to(r.host);
  j.at("message").get_to(r.message);
}

void to_json(json& j, const SanityOutput& r) { j = {{"prompt", r.prompt}, {"output", r.output}}; }

void from_json(const json& j, SanityOutput& r) {
  j.at("prompt").get_to(r.prompt);
  j.at("output").get_to(r.output);
}

void to_json(json& j, const UnitResult& r) {
  j = {{"key", r.key},         {"config", r.config},   {"rank", r.rank},
       {"host", r.host},       {"seconds", r.seconds}, {"samples", r.samples},
       {"sanity", r.sanity},   {"bench", nullptr},     {"error", nullptr},
       {"perplexity", nullptr}, {"kl_vs_baseline", nullptr}};
  if (r.perplexity) j["perplexity"] = *r.perplexity;
  if (r.kl_vs_baseline) j["kl_vs_baseline"] = *r.kl_vs_baseline;
  if (r.bench) j["bench"] = *r.bench;
  if (r.error) j["error"] = *r.error;
}

void from_json(const json& j, UnitResult& r) {
  j.at("key").get_to(r.key);
  j.at("config").get_to(r.config);
  j.at("rank").get_to(r.rank);
  j.at("host").get_to(r.host);
  j.at("seconds").get_to(r.seconds);
  j.at("samples").get_to(r.samples);
  j.at("sanity").get_to(r.sanity);
  if (!j.at("bench").is_null()) r.bench = j.at("bench").get<BenchRecord>();
  if (!j.at("error").is_null()) r.error = j.at("error").get<UnitError>();
  if (!j.at("perplexity").is_null()) r.perplexity = j.at("perplexity").get<double>();
  if (!j.at("kl_vs_baseline").is_null()) r.kl_vs_baseline = j.at("kl_vs_baseline").get<double>();
}

}  // namespace qsweep
