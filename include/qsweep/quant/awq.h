#pragma once
// AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization", mit-han-lab/llm-awq): the search
// for per-input-channel scales and per-group clipping thresholds of one group of linear layers
// that share an input, and AWQ's asymmetric group quantizer. The caller runs the model layer by
// layer, collects each group's inputs, owns the block functions and folds the chosen scales
// into the preceding RMSNorm or linear; nothing here knows the model.
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace qsweep {

struct AwqOptions {
  int bits = 4;              // 2, 3, 4 or 8: the widths the int-group storage holds
  int group_size = 128;      // a divisor of in (AWQ checkpoints use 32, 64 or 128), or -1: one
                             // group per output row
  int grid = 20;             // scale exponents 0, 1/grid, ..., (grid-1)/grid
  bool clip = true;          // read by the caller: whether to run awq_search_clip at all
  double max_shrink = 0.5;   // clip search: max |w| shrunk by up to this fraction
  int clip_tokens = 512;     // input rows sampled for the clip search
};

// AWQ's asymmetric group quantizer (pseudo_quantize_tensor with zero_point): per group of
// input channels of each row, scale = (max - min).clamp(min 1e-5) / (2^bits - 1),
// zero = clamp(-round(min / scale), 0, 2^bits - 1), q = clamp(round(w / scale) + zero, 0, maxq).
// Unlike GPTQ's quantizer the range need not contain 0, so a group of one constant value c
// keeps scale 1e-5 / maxq and dequantizes to +-1e-5 (the reference does the same).
// w [out, in] in any float dtype, on any device; returns the dequantized weights (float32, same
// shape, same device).
at::Tensor awq_fake_quantize(const at::Tensor& w, int bits, int group_size);

// The same quantizer's codes, scales and zeros in the int-group storage (g_idx = i / group),
// scales stored in `dtype` (codes chosen with float32 scales); dequantizes to awq_fake_quantize(w)
// up to the scale rounding. The codes are packed on the CPU; every tensor of the result is on
// w's device.
IntGroupWeight awq_quantize(const at::Tensor& w, int bits, int group_size, at::ScalarType dtype);

// Per-input-channel mean |x| over every row of x [..., in] (float32 [in], on x's device),
// accumulated in float32 without a copy of |x|.
at::Tensor awq_channel_magnitude(const at::Tensor& x);

// The grid search of the scale exponent: for ratio r in the grid, s = magnitude^r clamped to
// >= 1e-4 and normalised by sqrt(max(s) * min(s)); each weight W_i [out_i, in] of the group is
// replaced by awq_fake_quantize(W_i * s) / s (in W_i's dtype), `block` maps those candidate
// weights to the block's output, and the error is the mean squared difference from `reference`
// (the block's output with the original weights), in float32. Returns the s of least error
// (float32 [in], on magnitude's device), that error and its ratio; ties go to the smaller ratio,
// so a block that scaling cannot help keeps ratio 0: s all ones, the plain quantizer.
// As llm-awq, s depends on the activations alone; AutoAWQ's default "duo scaling" also divides
// by the weights' mean relative magnitude to the power 1 - r, which is not done here.
struct AwqScale {
  at::Tensor scales;
  double error = 0;
  double ratio = 0;
};
using AwqBlock = std::function<at::Tensor(const std::vector<at::Tensor>& weights)>;
AwqScale awq_search_scale(const at::Tensor& magnitude, const std::vector<at::Tensor>& weights,
                          const AwqBlock& block, const at::Tensor& reference,
                          const AwqOptions& options);

// The clipping search (llm-awq's auto_clip): per row and group the max |w| is shrunk by i/grid
// for i < max_shrink * grid; the kept threshold minimises the mean squared error of that group's
// output x_g . q(w_g) over at most `clip_tokens` rows of x [..., in], taken with a fixed stride
// across all of x (no RNG). w and x are the weight and input after the AWQ scaling (W * s and
// x / s). Returns the threshold [out, groups] (float32, on w's device). llm-awq leaves out the
// q and k projections, whose error reaches the output through q . k; that choice is the caller's.
at::Tensor awq_search_clip(const at::Tensor& w, const at::Tensor& x, const AwqOptions& options);
// w [out, in] clamped to [-t, t] per row and group of threshold [out, groups], in w's dtype.
at::Tensor awq_apply_clip(const at::Tensor& w, const at::Tensor& threshold, int group_size);

}  // namespace qsweep
