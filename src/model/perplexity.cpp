#include "qsweep/model/perplexity.h"

#include "qsweep/model/engine.h"
#include "qsweep/util/error.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>

namespace qsweep {

std::vector<std::vector<int32_t>> text_windows(const Tokenizer& tokenizer, const std::string& text,
                                               int window, int max_windows) {
  const std::vector<int32_t> ids = tokenizer.encode(text, true);
  std::vector<std::vector<int32_t>> windows;
  for (size_t start = 0; start + 1 < ids.size() && static_cast<int>(windows.size()) < max_windows;
       start += window)
    windows.emplace_back(ids.begin() + start, ids.begin() + std::min(ids.size(), start + window));
  if (windows.empty()) fail("perplexity text has {} token(s); it needs at least 2", ids.size());
  return windows;
}

namespace {

// Log-probabilities [T - 1, vocab] (float32) of each next token of one window.
at::Tensor next_token_log_probs(const Model& m, const std::vector<int32_t>& window) {
  const int64_t t = static_cast<int64_t>(window.size());
  return at::log_softmax(forward_sequence(m, window, false).narrow(0, 0, t - 1).to(at::kFloat), -1);
}

}  // namespace

TextScores score_text(const Model& model, const Model* baseline,
                      const std::vector<std::vector<int32_t>>& windows) {
  c10::InferenceMode guard;
  double nll = 0, kl = 0;
  TextScores s;
  for (const auto& w : windows) {
    const at::Tensor log_config = next_token_log_probs(model, w);
    const at::Tensor targets =
        at::tensor(std::vector<int64_t>(w.begin() + 1, w.end()), at::kLong).to(model.device);
    nll -= log_config.gather(1, targets.unsqueeze(1)).sum().item<double>();
    if (baseline) {
      const at::Tensor log_base = next_token_log_probs(*baseline, w).to(model.device);
      kl += (log_base.exp() * (log_base - log_config)).sum().item<double>();
    }
    s.tokens += w.size() - 1;
  }
  s.perplexity = std::exp(nll / s.tokens);
  if (baseline) s.kl_vs_baseline = kl / s.tokens;
  return s;
}

}  // namespace qsweep
