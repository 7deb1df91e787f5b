#include "qsweep/quant/awq.h"

#include "qsweep/model/format_int_group.h"
#include "qsweep/util/error.h"

#include <ATen/ATen.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <string>

namespace qsweep {
namespace {

// Output rows whose clip search runs at once (llm-awq's batch). Each group's product is a
// matmul, so a batch holds groups x rows x tokens floats a few times over: 32 MiB for 8192
// inputs in groups of 128 and 512 tokens, where llm-awq's element-wise product of the same
// batch would take 128 times that.
constexpr int64_t kClipRowsPerBatch = 256;

// The search quantizes as the stored weight will be, so it takes only the stored widths.
void check_bits(int bits) { check_int_group_bits("AWQ", bits); }

int64_t checked_group_size(int group_size, int64_t in) {
  return int_group_columns("AWQ", group_size, in);
}

std::string shape_text(const at::Tensor& t) {
  return fmt::format("[{}]", fmt::join(t.sizes(), ", "));
}

void check_weight(const at::Tensor& w, const char* who) {
  if (w.dim() != 2 || w.numel() == 0)
    fail("{}: the weight must be a non-empty 2-D [out, in], got shape {}", who, shape_text(w));
}

struct AwqGroupScale {
  at::Tensor scale;   // float32 [rows, 1]
  at::Tensor zero;    // float32 [rows, 1], integral values in [0, 2^bits - 1]
};

// One scale and zero per row of rows [n, group] (float32). The range is the row's own
// [min, max], not widened to hold 0; the 1e-5 floor keeps a constant row from dividing by 0.
AwqGroupScale group_scale(const at::Tensor& rows, int bits) {
  const double maxq = (1 << bits) - 1;
  const at::Tensor max = rows.amax(1, true), min = rows.amin(1, true);
  AwqGroupScale s;
  s.scale = (max - min).clamp_min(1e-5) / maxq;
  s.zero = at::round(-min / s.scale).clamp(0, maxq);
  return s;
}

// clamp(round(w / scale) + zero, 0, maxq) per row, as float32.
at::Tensor group_codes(const at::Tensor& rows, const AwqGroupScale& s, int bits) {
  return (at::round(rows / s.scale) + s.zero).clamp(0, (1 << bits) - 1);
}

void check_options(const AwqOptions& o) {
  check_bits(o.bits);
  if (o.grid < 1) fail("AWQ grid must be at least 1, got {}", o.grid);
  if (!(o.max_shrink >= 0 && o.max_shrink < 1))
    fail("AWQ max_shrink must lie in [0, 1), got {}", o.max_shrink);
  if (o.clip_tokens < 1) fail("AWQ clip_tokens must be at least 1, got {}", o.clip_tokens);
}

// magnitude^ratio, floored, over the geometric mean of its extremes so that the scales sit
// around 1 and neither the scaled weights nor the norm they are folded into drift in size.
at::Tensor ratio_scales(const at::Tensor& magnitude, double ratio) {
  const at::Tensor s = magnitude.pow(ratio).clamp_min(1e-4);
  return s / (s.max() * s.min()).sqrt();
}

// Mean squared difference in float32; the copy keeps the block's output untouched and a half
// precision difference from overflowing when squared.
double mean_squared_error(const at::Tensor& out, const at::Tensor& reference) {
  if (!out.sizes().equals(reference.sizes()))
    fail("awq_search_scale: the block's output has shape {} but the reference {}",
         shape_text(out), shape_text(reference));
  const at::Tensor diff = out.to(at::kFloat, false, true).sub_(reference);
  return diff.square_().mean().item<double>();
}

// The block's error with every weight replaced by q(W * s) / s.
double scaled_error(const std::vector<at::Tensor>& weights, const at::Tensor& s,
                    const AwqBlock& block, const at::Tensor& reference, const AwqOptions& o) {
  std::vector<at::Tensor> candidates;
  for (const at::Tensor& w : weights) {
    const at::Tensor sw = s.to(w.device());
    candidates.push_back(
        (awq_fake_quantize(w.to(at::kFloat) * sw, o.bits, o.group_size) / sw).to(w.scalar_type()));
  }
  return mean_squared_error(block(candidates), reference);
}

// At most `tokens` rows of x [n, in] with one stride across all of them. llm-awq's stride
// n / tokens, rounded down, takes up to twice `tokens` rows; rounding up keeps to the bound and
// agrees with it where tokens divides n, as in its 128 samples of 512 tokens.
at::Tensor sampled_rows(const at::Tensor& x, int64_t tokens) {
  const int64_t n = x.size(0), stride = std::max<int64_t>(1, (n + tokens - 1) / tokens);
  return x.slice(0, 0, n, stride);
}

// Every group's output w_g . x_g for w [rows, groups, group] and x [groups, group, tokens]:
// [groups, rows, tokens].
at::Tensor group_outputs(const at::Tensor& w, const at::Tensor& x) {
  return at::bmm(w.transpose(0, 1), x);
}

// The clip search of a batch of rows w [rows, in] (float32) against x [groups, group, tokens];
// the threshold [rows, groups].
at::Tensor batch_thresholds(const at::Tensor& w, const at::Tensor& x, const AwqOptions& o) {
  const int64_t rows = w.size(0), in = w.size(1), groups = x.size(0), group = x.size(1);
  const at::Tensor w3 = w.view({rows, groups, group});
  const at::Tensor max_abs = w3.abs().amax(-1, true);                // [rows, groups, 1]
  const at::Tensor reference = group_outputs(w3, x);
  at::Tensor best = max_abs.clone();
  at::Tensor least = at::full_like(max_abs, std::numeric_limits<double>::infinity());
  // int() of the product as llm-awq: 0.5 * 20 shrinks by 0/20 to 9/20, never by a half.
  const int steps = static_cast<int>(o.max_shrink * o.grid);
  for (int i = 0; i < steps; ++i) {
    const at::Tensor t = max_abs * (1.0 - static_cast<double>(i) / o.grid);
    const at::Tensor clipped = at::clamp(w3, -t, t).view({rows, in});
    const at::Tensor q = awq_fake_quantize(clipped, o.bits, static_cast<int>(group));
    const at::Tensor err = (group_outputs(q.view({rows, groups, group}), x) - reference)
                               .square_()
                               .mean(-1)
                               .t()
                               .unsqueeze(-1);
    const at::Tensor better = err < least;
    least = at::where(better, err, least);
    best = at::where(better, t, best);
  }
  return best.squeeze(-1);
}

}  // namespace

at::Tensor awq_fake_quantize(const at::Tensor& w, int bits, int group_size) {
  check_weight(w, "awq_fake_quantize");
  check_bits(bits);
  const int64_t group = checked_group_size(group_size, w.size(1));
  const at::Tensor rows = w.to(at::kFloat).reshape({-1, group});
  const AwqGroupScale s = group_scale(rows, bits);
  return ((group_codes(rows, s, bits) - s.zero) * s.scale).view(w.sizes());
}

IntGroupWeight awq_quantize(const at::Tensor& w, int bits, int group_size, at::ScalarType dtype) {
  check_weight(w, "awq_quantize");
  check_bits(bits);
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t group = checked_group_size(group_size, in), groups = in / group;
  const at::Tensor rows = w.to(at::kFloat).reshape({out * groups, group});
  const AwqGroupScale s = group_scale(rows, bits);
  const at::Tensor codes = group_codes(rows, s, bits).view({out, in}).to(at::kInt);
  const at::Tensor g_idx =
      at::arange(in, at::TensorOptions().dtype(at::kLong).device(w.device())).div(group, "floor");
  return make_int_group_weight(codes, s.scale.view({out, groups}).t(),
                               s.zero.view({out, groups}).t().to(at::kInt), g_idx, bits,
                               static_cast<int>(group), false, dtype);
}

at::Tensor awq_channel_magnitude(const at::Tensor& x) {
  if (x.dim() < 1 || x.numel() == 0)
    fail("awq_channel_magnitude: x must hold at least one row [..., in], got shape {}",
         shape_text(x));
  const at::Tensor rows = x.reshape({-1, x.size(-1)});
  // The 1-norm of each column is its sum of |x|, accumulated in float32 with no |x| tensor.
  return at::linalg_vector_norm(rows, 1, at::IntArrayRef{0}, false, at::kFloat) / rows.size(0);
}

AwqScale awq_search_scale(const at::Tensor& magnitude, const std::vector<at::Tensor>& weights,
                          const AwqBlock& block, const at::Tensor& reference,
                          const AwqOptions& options) {
  check_options(options);
  if (magnitude.dim() != 1)
    fail("awq_search_scale: magnitude must be 1-D [in], got {} dims", magnitude.dim());
  if (weights.empty()) fail("awq_search_scale: the group has no weights");
  const int64_t in = magnitude.size(0);
  for (size_t i = 0; i < weights.size(); ++i) {
    check_weight(weights[i], "awq_search_scale");
    if (weights[i].size(1) != in)
      fail("awq_search_scale: weight {} has {} input features but magnitude {}", i,
           weights[i].size(1), in);
  }
  checked_group_size(options.group_size, in);

  const at::Tensor m = magnitude.to(at::kFloat);
  AwqScale best;
  best.error = std::numeric_limits<double>::infinity();
  for (int k = 0; k < options.grid; ++k) {
    const double ratio = static_cast<double>(k) / options.grid;
    const at::Tensor s = ratio_scales(m, ratio);
    const double error = scaled_error(weights, s, block, reference, options);
    // Strictly less: on a tie the smaller exponent stays, as in llm-awq.
    if (error < best.error) best = AwqScale{s, error, ratio};
  }
  if (!best.scales.defined())
    fail("awq_search_scale: no scale exponent gave a finite error (the block's output holds NaN "
         "or Inf)");
  return best;
}

at::Tensor awq_search_clip(const at::Tensor& w, const at::Tensor& x, const AwqOptions& options) {
  check_options(options);
  check_weight(w, "awq_search_clip");
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t group = checked_group_size(options.group_size, in);
  if (x.dim() < 1 || x.size(-1) != in || x.numel() == 0)
    fail("awq_search_clip: x must be [..., {}] with at least one row, got shape {}", in,
         shape_text(x));
  const at::Tensor xs =
      sampled_rows(x.reshape({-1, in}), options.clip_tokens).to(w.device(), at::kFloat);
  // [groups, group, tokens]: each group's inputs, the right operand of one matmul per group.
  const at::Tensor xg =
      xs.reshape({xs.size(0), in / group, group}).permute({1, 2, 0}).contiguous();
  std::vector<at::Tensor> thresholds;
  for (int64_t r = 0; r < out; r += kClipRowsPerBatch) {
    const at::Tensor rows = w.slice(0, r, std::min(out, r + kClipRowsPerBatch)).to(at::kFloat);
    thresholds.push_back(batch_thresholds(rows.contiguous(), xg, options));
  }
  return at::cat(thresholds, 0);
}

at::Tensor awq_apply_clip(const at::Tensor& w, const at::Tensor& threshold, int group_size) {
  check_weight(w, "awq_apply_clip");
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t group = checked_group_size(group_size, in), groups = in / group;
  if (!threshold.sizes().equals({out, groups}))
    fail("awq_apply_clip: threshold must be [{}, {}] for a [{}, {}] weight in groups of {}, "
         "got {}", out, groups, out, in, group, shape_text(threshold));
  const at::Tensor t = threshold.to(w.device(), at::kFloat).unsqueeze(-1);
  const at::Tensor w3 = w.to(at::kFloat).reshape({out, groups, group});
  return at::clamp(w3, -t, t).reshape({out, in}).to(w.scalar_type());
}

}  // namespace qsweep
