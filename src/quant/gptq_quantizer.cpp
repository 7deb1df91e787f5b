#include "qsweep/quant/gptq_quantizer.h"

#include <ATen/ATen.h>

namespace qsweep {

GroupScale gptq_find_params(const at::Tensor& w, int bits, bool sym) {
  const double maxq = (1 << bits) - 1;
  const at::Tensor x = w.to(at::kFloat);
  const at::Tensor zero = at::zeros({x.size(0)}, x.options());
  at::Tensor xmin = at::minimum(std::get<0>(x.min(1)), zero);
  at::Tensor xmax = at::maximum(std::get<0>(x.max(1)), zero);
  if (sym) {
    xmax = at::maximum(xmin.abs(), xmax);
    xmin = at::where(xmin < 0, -xmax, xmin);
  }
  // A row of zeros would give scale 0; GPTQ widens it to [-1, 1].
  const at::Tensor empty = (xmin == 0).logical_and(xmax == 0);
  xmin = at::where(empty, at::full_like(xmin, -1), xmin);
  xmax = at::where(empty, at::full_like(xmax, 1), xmax);

  GroupScale s;
  // A tensor divisor, as GPTQ's maxq is one: libtorch on a GPU turns division by a host scalar
  // into multiplication by its reciprocal, which can differ in the last bit.
  s.scale = (xmax - xmin) / at::full_like(xmax, maxq);
  s.zero = sym ? at::full_like(s.scale, (maxq + 1) / 2) : at::round(-xmin / s.scale);
  return s;
}

at::Tensor gptq_codes(const at::Tensor& w, const GroupScale& s, int bits) {
  const double maxq = (1 << bits) - 1;
  const at::Tensor q = at::round(w.to(at::kFloat) / s.scale.unsqueeze(1)) + s.zero.unsqueeze(1);
  return at::clamp(q, 0, maxq).to(at::kInt);
}

}  // namespace qsweep
