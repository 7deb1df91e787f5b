// A GemvIo's norm, SiLU * up and residual add for the GEMV paths that do not fold them
// (qsweep/kernels/gemv_io.h): the decode kernels around a plain product.
#include "qsweep/kernels/gemv_io.h"

#include "qsweep/kernels/decode_kernels.h"

#include <ATen/ATen.h>

namespace qsweep::cuda {

at::Tensor silu_of_halves(const at::Tensor& y) {
  TORCH_CHECK(y.dim() == 2 && y.size(1) % 2 == 0,
              "silu_of_halves: y must be [M, 2 * I], got ", y.sizes());
  const int64_t half = y.size(1) / 2;
  return silu_mul(y.narrow(1, 0, half), y.narrow(1, half, half));
}

at::Tensor normed_rows(const at::Tensor& x, const GemvIo& io) {
  at::Tensor rows = x;  // without a delta, add_rms_norm leaves its residual as it is
  return add_rms_norm(rows, {}, io.norm_weight, io.norm_eps);
}

at::Tensor finish_output(const at::Tensor& y, const GemvIo& io) {
  if (io.output == GemvOutput::silu_gate_up) return silu_of_halves(y);
  if (io.adds()) return io.residual.add_(y.view(io.residual.sizes()));
  return y;
}

void check_gemv_io(const GemvIo& io, const at::Tensor& x, int64_t out, const char* fn) {
  if (io.is_normed()) {
    const at::Tensor& w = io.norm_weight;
    TORCH_CHECK(w.is_cuda() && w.is_contiguous() && w.dim() == 1 && w.numel() == x.size(-1) &&
                    w.scalar_type() == x.scalar_type(),
                fn, ": the norm weight must be a contiguous CUDA [in = ", x.size(-1), "] tensor in ",
                x.scalar_type(), ", got ", w.sizes(), " ", w.scalar_type());
  }
  if (io.adds()) {
    const at::Tensor& r = io.residual;
    TORCH_CHECK(io.output == GemvOutput::product, fn, ": a residual add takes the plain product");
    TORCH_CHECK(r.is_cuda() && r.is_contiguous() && r.numel() == x.size(0) * out &&
                    r.scalar_type() == x.scalar_type(),
                fn, ": the residual must be a contiguous CUDA tensor of M x out = ",
                x.size(0), " x ", out, " elements in ", x.scalar_type(), ", got ",
                r.sizes(), " ", r.scalar_type());
  }
}

}  // namespace qsweep::cuda
