#include "qsweep/sweep/validate_inputs.h"

#include "qsweep/bench/device.h"
#include "qsweep/eval/coqa.h"
#include "qsweep/model/check_weights.h"
#include "qsweep/model/kv_cache_size.h"
#include "qsweep/model/model.h"
#include "qsweep/model/model_config.h"
#include "qsweep/tokenizer/tokenizer.h"
#include "qsweep/util/error.h"

#include <algorithm>
#include <set>

namespace qsweep {

void validate_sweep_inputs(const SweepSpec& spec) {
  std::set<std::string> model_dirs;
  for (const PrepConfig& c : spec.configs) model_dirs.insert(model_dir_of(spec, c));
  const Tokenizer tokenizer = Tokenizer::from_model_dir(spec.tokenizer);
  for (const std::string& dir : model_dirs) {
    check_model_weights(dir);
    // Ids past the embedding table would index out of it on the first prompt.
    const ModelConfig config = load_model_config(dir);
    if (tokenizer.vocab_size() > static_cast<size_t>(config.vocab_size))
      fail("{}: has {} tokens but {} has vocab_size {}: this tokenizer is not the model's (set "
           "`tokenizer` to the model's own)",
           tokenizer.source(), tokenizer.vocab_size(), config.source, config.vocab_size);
  }
  if (spec.evaluation.enabled) load_coqa(spec.evaluation.coqa);
}

namespace {

// The largest KV cache a config's units allocate, as far as the job file says: the answers of a
// CoQA batch (prompts come on top) and the benchmark's prefill + decode at its largest batch.
void check_kv_caches(const SweepSpec& spec, const PrepConfig& c, const at::Device& device) {
  const ModelConfig model = load_model_config(model_dir_of(spec, c));
  const int bytes = static_cast<int>(c10::elementSize(scalar_type(c.dtype)));
  const GenerateOptions& g = spec.evaluation.options.generation;
  if (spec.evaluation.enabled)
    check_kv_cache_fits(kv_cache_bytes(model, g.batch_size, g.max_new_tokens, bytes), device,
                        fmt::format("{}: config '{}': evaluation.batch_size {} with "
                                    "evaluation.max_new_tokens {}",
                                    spec.path, c.name, g.batch_size, g.max_new_tokens));
  const BenchOptions& b = spec.benchmarks.options;
  if (spec.benchmarks.enabled) {
    const int batch = *std::max_element(b.batch_sizes.begin(), b.batch_sizes.end());
    check_kv_cache_fits(kv_cache_bytes(model, batch, b.prefill_tokens + b.decode_tokens, bytes),
                        device, fmt::format("{}: config '{}': benchmarks.batch_sizes up to {} "
                                            "with prefill_tokens + decode_tokens {}",
                                            spec.path, c.name, batch,
                                            b.prefill_tokens + b.decode_tokens));
  }
}

}  // namespace

std::string validate_device(const SweepSpec& spec, int local_rank) {
  const at::Device device = choose_device(spec.device, local_rank);
  for (const PrepConfig& c : spec.configs) check_kv_caches(spec, c, device);
  return device_description(device);
}

}  // namespace qsweep
