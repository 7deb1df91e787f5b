#include "qsweep/quant/gptq.h"

#include "qsweep/model/format_int_group.h"
#include "qsweep/quant/gptq_quantizer.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace qsweep {
namespace {

// Enough for any Hessian a calibration set gives: from the default 1% the last try adds 1000
// times the mean diagonal, which swamps H.
constexpr int kMaxDampRetries = 5;
// A dampening of 0 cannot grow tenfold; retries start from the reference's default.
constexpr double kFirstRetryPercent = 0.01;

int64_t checked_group_size(const GptqOptions& o, int64_t in, const std::string& name) {
  const std::string who = "GPTQ " + name + ":";
  check_int_group_bits(who, o.bits);
  if (o.block_size <= 0) fail("GPTQ {}: block_size must be positive, got {}", name, o.block_size);
  if (!std::isfinite(o.damp_percent) || o.damp_percent < 0)
    fail("GPTQ {}: damp_percent must be a finite number >= 0, got {}", name, o.damp_percent);
  return int_group_columns(who, o.group_size, in);
}

void check_hessian(const Hessian& hessian, int64_t in, const std::string& name) {
  const at::Tensor& h = hessian.h;
  if (!h.defined() || hessian.rows == 0)
    fail("GPTQ {}: no calibration rows reached the layer, so it has no Hessian", name);
  if (h.dim() != 2 || h.size(0) != in || h.size(1) != in)
    fail("GPTQ {}: the Hessian has {} elements, the weight's {} input features need {} x {}",
         name, h.numel(), in, in, in);
  // Dampening cannot repair a NaN, so say where it came from instead of retrying.
  if (!at::isfinite(h).all().item<bool>())
    fail("GPTQ {}: the Hessian holds NaN or infinity: the calibration activations overflowed",
         name);
}

// An input that is always zero (a zero diagonal) says nothing about its weights: GPTQ sets
// them to 0 and the diagonal to 1 so that H stays invertible.
void zero_dead_columns(at::Tensor& w, at::Tensor& h) {
  const at::Tensor dead = h.diagonal() == 0;
  h.diagonal().masked_fill_(dead, 1);
  w.masked_fill_(dead.unsqueeze(0), 0);
}

// One scale and zero per group of the columns as given, [groups, out].
GroupScale static_group_params(const at::Tensor& w, int64_t group, int bits, bool sym) {
  const int64_t out = w.size(0), groups = w.size(1) / group;
  const GroupScale s = gptq_find_params(w.reshape({out * groups, group}), bits, sym);
  return {s.scale.view({out, groups}).t().contiguous(),
          s.zero.view({out, groups}).t().contiguous()};
}

// The upper Cholesky factor of (H + damp I)^-1, undefined where H + damp I is not positive
// definite to float32 precision (either factorization fails).
at::Tensor inverse_factor(const at::Tensor& h, double damp) {
  at::Tensor damped = h.clone();
  damped.diagonal().add_(damp);
  const auto [lower, info] = at::linalg_cholesky_ex(damped);
  if (info.item<int>() != 0) return {};
  const auto [upper, info_upper] = at::linalg_cholesky_ex(at::cholesky_inverse(lower), true);
  if (info_upper.item<int>() != 0) return {};
  return upper;
}

struct InverseFactor {
  at::Tensor hinv;
  double damp = 0;
  int retries = 0;
};

InverseFactor damped_inverse_factor(const at::Tensor& h, double damp_percent,
                                    const std::string& name) {
  const double mean_diag = h.diagonal().mean().item<double>();
  double percent = damp_percent;
  for (int retry = 0;; ++retry) {
    const double damp = percent * mean_diag;
    at::Tensor hinv = inverse_factor(h, damp);
    if (hinv.defined()) return {hinv, damp, retry};
    if (retry == kMaxDampRetries)
      fail("GPTQ {}: the Hessian is not positive definite even with dampening {:g} "
           "(damp_percent {:g}) after {} retries; raise damp_percent or calibrate with more "
           "samples", name, damp, percent, retry);
    percent = percent > 0 ? percent * 10 : kFirstRetryPercent;
    log_warning("GPTQ {}: Cholesky of the Hessian failed with dampening {:g}; retrying with {:g} "
                "(damp_percent {:g})", name, damp, percent * mean_diag, percent);
  }
}

// What the column loop reads. The weight is held transposed, so that a column is a contiguous
// row on the device and the lazy updates touch trailing rows.
struct Columns {
  at::Tensor wt;                 // float32 [in, out]: W^T in quantization order, updated in place
  at::Tensor hinv;               // float32 [in, in]: upper Cholesky factor of H^-1, same order
  at::Tensor perm;               // int64 [in]: the input column at each position
  double damp = 0;               // added to H's diagonal for hinv
  int damp_retries = 0;
  int bits = 4;
  bool sym = true;
  int64_t group = 0;
  GroupScale fixed;              // static groups: [groups, out]; undefined otherwise
  std::vector<int64_t> group_of; // static groups: the group of the column at each position
};

struct Quantized {
  std::vector<at::Tensor> codes;          // int32 [out] per column, in quantization order
  std::vector<at::Tensor> scales, zeros;  // [out] per group, found as the loop reaches it
  at::Tensor err_sq;                      // 0-dim: the sum of every err^2
};

// Columns [col, col + group) of W as they stand when the loop reaches `col` = i1 + i, [out,
// group]: those inside the block from its working copy w1, which holds the updates of the
// block's earlier columns; those past it from wt less the updates still pending there. The
// reference reads W here, without the block's updates: that differs only for a group that
// starts inside a block (group_size < block_size).
at::Tensor group_as_it_stands(const Columns& c, const at::Tensor& w1,
                              const std::vector<at::Tensor>& errs, int64_t i1, int64_t i) {
  const int64_t col = i1 + i, end = std::min(col + c.group, c.wt.size(0));
  const int64_t i2 = i1 + w1.size(0);
  at::Tensor rows = w1.slice(0, i, std::min(end, i2) - i1);
  if (end > i2) {
    at::Tensor past = c.wt.slice(0, i2, end);
    if (!errs.empty())
      past = past - at::matmul(c.hinv.slice(0, i1, col).slice(1, i2, end).t(), at::stack(errs));
    rows = at::cat({rows, past});
  }
  return rows.t();
}

GroupScale column_params(const Columns& c, const Quantized& q, int64_t col) {
  if (!c.fixed.scale.defined()) return {q.scales.back(), q.zeros.back()};
  const int64_t g = c.group_of[col];
  return {c.fixed.scale[g], c.fixed.zero[g]};
}

// Columns [i1, i2): each quantized in turn, its error err = (w - q) / d spread over the
// block's later columns at once and over the columns past the block in one product at the end.
void quantize_block(Columns& c, int64_t i1, int64_t i2, Quantized& q) {
  at::Tensor w1 = c.wt.slice(0, i1, i2).clone();
  const at::Tensor hinv1 = c.hinv.slice(0, i1, i2).slice(1, i1, i2);
  std::vector<at::Tensor> errs;
  for (int64_t i = 0; i < i2 - i1; ++i) {
    // With group_size -1 the one group is found here at column 0, on W with its dead columns
    // zeroed; the reference finds it before zeroing them.
    if (!c.fixed.scale.defined() && (i1 + i) % c.group == 0) {
      const GroupScale s = gptq_find_params(group_as_it_stands(c, w1, errs, i1, i), c.bits, c.sym);
      q.scales.push_back(s.scale);
      q.zeros.push_back(s.zero);
    }
    const GroupScale s = column_params(c, q, i1 + i);
    const at::Tensor w = w1[i];
    const at::Tensor code = gptq_codes(w.unsqueeze(1), s, c.bits).squeeze(1);
    const at::Tensor err = (w - (code - s.zero) * s.scale) / hinv1[i][i];
    // Row i itself is done: only the later ones take its error.
    if (i + 1 < i2 - i1) w1.slice(0, i + 1).addr_(hinv1[i].slice(0, i + 1), err, 1, -1);
    q.codes.push_back(code);
    errs.push_back(err);
  }
  const at::Tensor err1 = at::stack(errs);
  q.err_sq.add_(err1.square().sum());
  if (i2 < c.wt.size(0))
    c.wt.slice(0, i2).addmm_(c.hinv.slice(0, i1, i2).slice(1, i2).t(), err1, 1, -1);
}

// Packed where the codes were chosen (the weight's device).
IntGroupWeight int_group_on(const at::Device& device, const at::Tensor& codes,
                            const GroupScale& params, const at::Tensor& g_idx, int bits,
                            int64_t group, bool sym, at::ScalarType compute_dtype) {
  return make_int_group_weight(codes.to(device), params.scale.to(device),
                               params.zero.to(at::kInt).to(device), g_idx.to(device), bits,
                               static_cast<int>(group), sym, compute_dtype);
}

// The weight transposed and the inverse Hessian factor, in quantization order: input order, or
// with act-order by decreasing diagonal, the inputs with the most weight first.
Columns columns_in_order(const at::Tensor& w, const Hessian& hessian, const GptqOptions& o,
                         int64_t group, const std::string& name) {
  at::Tensor wf = w.to(at::kFloat, false, true).contiguous();
  at::Tensor h = hessian.h.to(w.device(), at::kFloat, false, true);
  zero_dead_columns(wf, h);
  Columns c;
  c.bits = o.bits;
  c.sym = o.sym;
  c.group = group;
  if (o.static_groups) c.fixed = static_group_params(wf, group, o.bits, o.sym);
  c.perm = at::arange(w.size(1), h.options().dtype(at::kLong));
  if (o.desc_act) {
    c.perm = at::argsort(h.diagonal(), /*stable=*/true, 0, /*descending=*/true);
    wf = wf.index_select(1, c.perm);
    h = h.index_select(0, c.perm).index_select(1, c.perm);
  }
  if (o.static_groups) {
    const at::Tensor g = c.perm.div(group, "floor").cpu();
    c.group_of.assign(g.data_ptr<int64_t>(), g.data_ptr<int64_t>() + g.numel());
  }
  const InverseFactor factor = damped_inverse_factor(h, o.damp_percent, name);
  c.hinv = factor.hinv;
  c.damp = factor.damp;
  c.damp_retries = factor.retries;
  c.wt = wf.t().contiguous();
  return c;
}

// Back to input order. A static group belongs to the column's input position; otherwise a
// column's group is the one the loop found at its position in quantization order.
// The dequantized weight comes along, computed where the codes are: what the stored weight
// holds, without unpacking it on the host.
void in_input_order(const Columns& c, const Quantized& q, bool static_groups,
                    at::ScalarType compute_dtype, const at::Device& device, GptqResult& r) {
  const at::Tensor inverse = at::argsort(c.perm);
  const at::Tensor codes = at::stack(q.codes).index_select(0, inverse);  // [in, out]
  at::Tensor g_idx = at::arange(c.perm.size(0), c.perm.options()).div(c.group, "floor");
  if (!static_groups) g_idx = g_idx.index_select(0, inverse);
  const GroupScale params =
      static_groups ? c.fixed : GroupScale{at::stack(q.scales), at::stack(q.zeros)};
  const at::Tensor scale = params.scale.to(compute_dtype).to(at::kFloat).index_select(0, g_idx);
  r.dequantized = ((codes - params.zero.index_select(0, g_idx)) * scale).t().contiguous();
  r.weight = int_group_on(device, codes.t(), params, g_idx, c.bits, c.group, c.sym, compute_dtype);
}

}  // namespace

void add_to_hessian(Hessian& hessian, const at::Tensor& x) {
  if (x.dim() < 1 || !x.is_floating_point())
    fail("add_to_hessian: calibration inputs must be a float tensor [..., in]");
  const int64_t in = x.size(-1);
  const at::Tensor rows = x.reshape({-1, in}).to(at::kFloat);
  if (!hessian.h.defined()) hessian.h = at::zeros({in, in}, rows.options());
  if (hessian.h.size(0) != in)
    fail("add_to_hessian: inputs of {} features for a Hessian of {}", in, hessian.h.size(0));
  if (rows.size(0) == 0) return;
  const int64_t total = hessian.rows + rows.size(0);
  // The running mean: the earlier rows' 2 / rows becomes 2 / total.
  hessian.h.addmm_(rows.t(), rows, static_cast<double>(hessian.rows) / total, 2.0 / total);
  hessian.rows = total;
}

GptqResult gptq_quantize(const at::Tensor& w, const Hessian& hessian, const GptqOptions& options,
                         at::ScalarType compute_dtype, const std::string& name) {
  if (w.dim() != 2) fail("GPTQ {}: the weight must be 2-D [out, in], got {} dims", name, w.dim());
  const int64_t in = w.size(1);
  const int64_t group = checked_group_size(options, in, name);
  check_hessian(hessian, in, name);
  Columns c = columns_in_order(w, hessian, options, group, name);
  Quantized q;
  q.err_sq = at::zeros({}, c.wt.options());
  for (int64_t i1 = 0; i1 < in; i1 += options.block_size)
    quantize_block(c, i1, std::min<int64_t>(i1 + options.block_size, in), q);

  GptqResult r;
  in_input_order(c, q, options.static_groups, compute_dtype, w.device(), r);
  r.damp = c.damp;
  r.damp_retries = c.damp_retries;
  r.loss = q.err_sq.item<double>() / 2;
  return r;
}

}  // namespace qsweep
