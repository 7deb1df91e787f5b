#pragma once
// Perplexity of a text under one config, and the KL divergence of its next-token distributions
// from the baseline's on the same tokens. Unlike CoQA accuracy, both are meaningful for the
// random-init models qsweep is tested on: they measure how far quantization moves the model.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qsweep {

struct Model;
class Tokenizer;

// The text cut into windows of `window` tokens (the first `max_windows`; a shorter tail is kept).
std::vector<std::vector<int32_t>> text_windows(const Tokenizer& tokenizer, const std::string& text,
                                               int window, int max_windows);

struct TextScores {
  size_t tokens = 0;                      // predicted tokens (window length - 1 each)
  double perplexity = 0;                  // exp(mean negative log-likelihood)
  std::optional<double> kl_vs_baseline;   // mean KL(baseline || config) in nats per token
};

// Scores every window; with a baseline model, also the KL divergence against it.
TextScores score_text(const Model& model, const Model* baseline,
                      const std::vector<std::vector<int32_t>>& windows);

// The next-token logits [T - 1, vocab] of each window, as the model computes them (its dtype,
// on the CPU): what the KL needs of the baseline, computed once and kept, so that configs need
// not load the baseline beside themselves.
std::vector<at::Tensor> window_logits(const Model& model,
                                      const std::vector<std::vector<int32_t>>& windows);
// score_text with the baseline given by its window_logits.
TextScores score_text(const Model& model, const std::vector<at::Tensor>& baseline_logits,
                      const std::vector<std::vector<int32_t>>& windows);

}  // namespace qsweep
