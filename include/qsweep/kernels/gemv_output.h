#pragma once
// What a decode GEMV writes (dense_gemv.h, quant_kernels.h). A Llama MLP multiplies its stacked
// gate|up product into silu(gate) * up before down_proj; written by the GEMV's last step, that
// product needs neither its own kernel nor the 2 * I intermediate in memory.
#include <ATen/core/Tensor.h>

namespace qsweep::cuda {

enum class GemvOutput {
  product,       // y [M, out] = x W^T
  silu_gate_up,  // W stacks gate [I, in] over up [I, in]: y [M, I] = dtype(silu(gate)) * up, each
                 // product rounded to x's dtype first, as the product and silu_mul would round
};

// silu_mul (decode_kernels.h) of the halves of y [M, 2 * I]: the gate|up output of a GEMV path
// without that epilogue.
at::Tensor silu_of_halves(const at::Tensor& y);

}  // namespace qsweep::cuda
