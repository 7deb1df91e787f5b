#pragma once
// What a projection takes and leaves besides y = x W^T: the folds of the fused decode step
// (engine.cpp), shared by linear.h and the decode GEMVs (dense_gemv.h, quant_kernels.h). A
// decode step at batch 1 is bound by its kernel count, not its bytes, so the dense, NF4/FP4 and
// LLM.int8 GEMVs do in their own kernel what would otherwise be a kernel before or after them:
// the RMSNorm of their input (a prologue every block runs), SiLU * up of a stacked gate|up
// product and the residual add (an epilogue). Elsewhere the same values come from a kernel
// before or after the product, bit for bit.
#include <ATen/core/Tensor.h>

namespace qsweep {

enum class GemvOutput {
  product,       // y [M, out] = x W^T
  silu_gate_up,  // W stacks gate [I, in] over up [I, in]: y [M, I] = dtype(silu(gate)) * up, each
                 // product rounded to x's dtype first, as the product and silu_mul would round
};

struct GemvIo {
  GemvOutput output = GemvOutput::product;
  // Defined ([in], x's dtype): x is the residual stream, and the product is that of
  // transformers' RMSNorm of each x row with this weight and norm_eps, rounded as add_rms_norm
  // rounds it (decode_kernels.h); x is left as it is.
  at::Tensor norm_weight;
  double norm_eps = 0;
  // Defined ([M, out] elements, contiguous, x's dtype; output `product`): the product is added
  // into it, rounded as `residual + dtype(product)` rounds, and it is what the call returns.
  at::Tensor residual;

  GemvIo(GemvOutput o = GemvOutput::product) : output(o) {}
  static GemvIo normed(const at::Tensor& weight, double eps, GemvOutput o = GemvOutput::product) {
    GemvIo io(o);
    io.norm_weight = weight;
    io.norm_eps = eps;
    return io;
  }
  static GemvIo added_to(const at::Tensor& residual) {
    GemvIo io;
    io.residual = residual;
    return io;
  }
  bool is_normed() const { return norm_weight.defined(); }
  bool adds() const { return residual.defined(); }
  GemvIo without_norm() const {
    GemvIo io = *this;
    io.norm_weight = at::Tensor();
    return io;
  }
};

namespace cuda {

// silu_mul (decode_kernels.h) of the halves of y [M, 2 * I]: the gate|up output of a GEMV path
// without that epilogue.
at::Tensor silu_of_halves(const at::Tensor& y);
// x's rows through add_rms_norm with io's norm (x left as it is): the input of a GEMV path that
// has no norm prologue.
at::Tensor normed_rows(const at::Tensor& x, const GemvIo& io);
// What io's epilogue would have written, from a plain product y: SiLU * up of its halves, or
// the residual with y added (returned); y itself when io asks for neither.
at::Tensor finish_output(const at::Tensor& y, const GemvIo& io);
// Refuses, naming `fn`, an io that x [M, in] (2-D) and a weight of `out` rows cannot take: a norm
// weight that is not [in] contiguous in x's dtype, a residual that is not M * out contiguous
// elements in x's dtype, or one asked for with the gate|up output.
void check_gemv_io(const GemvIo& io, const at::Tensor& x, int64_t out, const char* fn);

}  // namespace cuda
}  // namespace qsweep
