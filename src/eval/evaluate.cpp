#include "qsweep/eval/evaluate.h"

#include "qsweep/eval/scoring.h"
#include "qsweep/util/text.h"
#include "qsweep/tokenizer/tokenizer.h"

namespace qsweep {

std::vector<SampleRecord> evaluate_samples(const Model& model, const Tokenizer& tokenizer,
                                           const std::vector<CoqaSample>& samples,
                                           const EvalOptions& options) {
  std::vector<std::vector<int32_t>> prompts;
  prompts.reserve(samples.size());
  for (const auto& s : samples) prompts.push_back(tokenizer.encode(s.prompt, options.add_bos));
  const std::vector<Generation> outputs = generate(model, tokenizer, prompts, options.generation);

  std::vector<SampleRecord> records;
  records.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const CoqaSample& s = samples[i];
    SampleRecord r;
    r.id = s.id;
    r.turn = s.turn;
    r.source = s.source;
    r.prompt_sha256 = sha256_hex(s.prompt);
    r.generation = outputs[i].text;
    r.prediction = lm_eval_postprocess(outputs[i].text);
    r.golds = s.golds;
    const AnswerScore score = score_answer(s.golds, r.prediction);
    r.em = score.em;
    r.f1 = score.f1;
    r.prompt_tokens = static_cast<int>(prompts[i].size());
    r.generated_tokens = static_cast<int>(outputs[i].tokens.size());
    r.stop_reason = stop_reason_name(outputs[i].stop_reason);
    records.push_back(std::move(r));
  }
  return records;
}

}  // namespace qsweep
