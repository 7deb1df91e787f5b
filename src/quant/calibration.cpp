#include "qsweep/quant/calibration.h"

#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <ATen/ATen.h>

#include <random>

namespace qsweep {

at::Tensor calibration_tokens(const Tokenizer& tokenizer, const CalibrationSpec& spec,
                              int seq_len) {
  const std::vector<int32_t> ids = tokenizer.encode(read_file(spec.text), false);
  const int64_t n = static_cast<int64_t>(ids.size()), needed = int64_t{spec.samples} * seq_len;
  if (n < needed)
    fail("calibration text '{}' has {} tokens, fewer than samples x seq_len = {} x {} = {}; give "
         "a longer text (calibration.text), or fewer samples or a shorter seq_len (at most {} "
         "windows of {} tokens fit)",
         spec.text, n, spec.samples, seq_len, needed, n / seq_len, seq_len);
  // mt19937_64's sequence is fixed by the standard (a distribution's is not), so the same seed
  // draws the same windows with every compiler and library.
  std::mt19937_64 generator(spec.seed);
  const uint64_t starts = static_cast<uint64_t>(n - seq_len + 1);
  at::Tensor tokens = at::empty({spec.samples, seq_len}, at::kLong);
  auto out = tokens.accessor<int64_t, 2>();
  for (int s = 0; s < spec.samples; ++s) {
    const int64_t from = static_cast<int64_t>(generator() % starts);
    for (int t = 0; t < seq_len; ++t) out[s][t] = ids[from + t];
  }
  return tokens;
}

}  // namespace qsweep
