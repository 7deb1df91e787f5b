#include "qsweep/model/perplexity.h"

#include "qsweep/model/engine.h"
#include "qsweep/util/error.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <functional>

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

// Logits [T - 1, vocab] of each next token of one window, in the model dtype.
at::Tensor next_token_logits(const Model& m, const std::vector<int32_t>& window) {
  const int64_t t = static_cast<int64_t>(window.size());
  return forward_sequence(m, window, false).narrow(0, 0, t - 1);
}

at::Tensor log_probs(const at::Tensor& logits) { return at::log_softmax(logits.to(at::kFloat), -1); }

// The baseline's logits of window i, by whichever means the caller has them.
using BaselineLogits = std::function<at::Tensor(size_t window)>;

TextScores score_windows(const Model& model, const BaselineLogits& baseline,
                         const std::vector<std::vector<int32_t>>& windows) {
  c10::InferenceMode guard;
  double nll = 0, kl = 0;
  TextScores s;
  for (size_t i = 0; i < windows.size(); ++i) {
    const auto& w = windows[i];
    const at::Tensor log_config = log_probs(next_token_logits(model, w));
    const at::Tensor targets =
        at::tensor(std::vector<int64_t>(w.begin() + 1, w.end()), at::kLong).to(model.device);
    nll -= log_config.gather(1, targets.unsqueeze(1)).sum().item<double>();
    if (baseline) {
      const at::Tensor log_base = log_probs(baseline(i).to(model.device));
      kl += (log_base.exp() * (log_base - log_config)).sum().item<double>();
    }
    s.tokens += w.size() - 1;
  }
  s.perplexity = std::exp(nll / s.tokens);
  if (baseline) s.kl_vs_baseline = kl / s.tokens;
  return s;
}

}  // namespace

TextScores score_text(const Model& model, const Model* baseline,
                      const std::vector<std::vector<int32_t>>& windows) {
  BaselineLogits logits;
  if (baseline) logits = [&](size_t i) { return next_token_logits(*baseline, windows[i]); };
  return score_windows(model, logits, windows);
}

std::vector<at::Tensor> window_logits(const Model& model,
                                      const std::vector<std::vector<int32_t>>& windows) {
  c10::InferenceMode guard;
  std::vector<at::Tensor> out;
  for (const auto& w : windows) out.push_back(next_token_logits(model, w).cpu());
  return out;
}

TextScores score_text(const Model& model, const std::vector<at::Tensor>& baseline_logits,
                      const std::vector<std::vector<int32_t>>& windows) {
  QSWEEP_CHECK(baseline_logits.size() == windows.size(),
               "score_text: {} baseline windows for {} windows", baseline_logits.size(),
               windows.size());
  return score_windows(model, [&](size_t i) { return baseline_logits[i]; }, windows);
}

}  // namespace qsweep
