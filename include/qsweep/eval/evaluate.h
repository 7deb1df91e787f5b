#pragma once
// One model over CoQA samples: encode each prompt, generate greedily, post-process and score
// exactly as lm-eval's `coqa` does. Used by `qsweep eval` and by the sweep's CoQA units.
#include "qsweep/eval/coqa.h"
#include "qsweep/model/generate.h"
#include "qsweep/util/results.h"

#include <string>
#include <vector>

namespace qsweep {

struct Model;
class Tokenizer;

// lm-eval's `coqa` generation settings as defaults; a sweep's `evaluation` section overrides them.
struct EvalOptions {
  GenerateOptions generation{kCoqaMaxGenTokens, {std::string(kCoqaStopSequence)}, 8};
  // lm-eval's Hugging Face backend encodes prompts without special tokens unless asked to.
  bool add_bos = false;
};

std::vector<SampleRecord> evaluate_samples(const Model& model, const Tokenizer& tokenizer,
                                           const std::vector<CoqaSample>& samples,
                                           const EvalOptions& options);

}  // namespace qsweep
