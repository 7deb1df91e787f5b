#include "qsweep/model/format_int8.h"

#include <ATen/ATen.h>

#include <vector>

namespace qsweep {
namespace {

// int8_vectorwise_dequant multiplies by the reciprocal of 127; int8_mm_dequant by 1 / 127^2
// (kernels.cu MM_DEQUANT_CONST).
constexpr float kInv127 = 1.0f / 127.0f;
constexpr float kInv127Squared = 1.0f / (127.0f * 127.0f);

}  // namespace

Int8Rows int8_quantize_rows(const at::Tensor& x, double threshold) {
  TORCH_CHECK(x.dim() == 2, "int8_quantize_rows: x must be 2-D");
  const at::Tensor xf = x.to(at::kFloat);
  Int8Rows r;
  at::Tensor kept = xf;
  r.outlier_cols = at::empty({0}, xf.options().dtype(at::kLong));
  if (threshold > 0) {
    // Outlier elements are left out of their row's absmax; their whole columns, in every row,
    // are left out of the int8 product (int8_vectorwise_quant).
    const at::Tensor outliers = xf.abs() >= threshold;
    r.outlier_cols = outliers.any(0).nonzero().view(-1);
    kept = at::where(outliers, at::zeros_like(xf), xf);
  }
  r.absmax = std::get<0>(kept.abs().max(1));
  // An all-zero row has no scale; the CUDA kernel's 0 * inf rounds to code 0, as here.
  const at::Tensor scale =
      at::where(r.absmax > 0, at::full_like(r.absmax, 127.0f) / r.absmax, at::zeros_like(r.absmax))
          .unsqueeze(1);
  r.codes = at::round(kept * scale).to(at::kChar).index_fill_(1, r.outlier_cols, 0);
  return r;
}

at::Tensor int8_rows_dequantize(const Int8RowWeight& w) {
  return w.weight.to(at::kFloat) * w.row_absmax.to(at::kFloat).unsqueeze(1) * kInv127;
}

at::Tensor int8_rows_forward(const Int8RowWeight& w, const at::Tensor& x) {
  const int64_t in = w.weight.size(1), out = w.weight.size(0);
  const at::Tensor x2 = x.reshape({-1, in});
  // MatMul8bitLt quantizes the activations from float16 whatever their dtype.
  const Int8Rows a = int8_quantize_rows(x2.to(at::kHalf), w.threshold);
  // Integer products summed exactly (double holds every int32 sum), then rounded to float as
  // the int32 result of the int8 matmul is.
  const at::Tensor acc = at::matmul(a.codes.to(at::kDouble), w.weight.to(at::kDouble).t());
  at::Tensor y = acc.to(at::kFloat) * a.absmax.unsqueeze(1) *
                 w.row_absmax.to(at::kFloat).unsqueeze(0) * kInv127Squared;
  if (a.outlier_cols.numel() > 0) {
    // The outlier columns of x in its own dtype against the weight columns dequantized from
    // int8 and rounded to x's dtype (int8_mixed_scaled_mm); the sum is in float32 here, where
    // bitsandbytes adds in x's dtype.
    const at::Tensor sub_x = x2.index_select(1, a.outlier_cols).to(at::kFloat);
    const at::Tensor sub_w = (w.weight.index_select(1, a.outlier_cols).to(at::kFloat) *
                              w.row_absmax.to(at::kFloat).unsqueeze(1) * kInv127)
                                 .to(x.scalar_type())
                                 .to(at::kFloat);
    y = y + at::matmul(sub_x, sub_w.t());
  }
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out;
  return y.to(x.scalar_type()).view(shape);
}

}  // namespace qsweep
