#pragma once
// Every projection of the model goes through this one type, so a quantized format is a new
// enum value, its fields and one case in each switch of linear.cpp, not a new class.
#include <ATen/core/Tensor.h>

namespace qsweep {

enum class LinearFormat {
  dense,  // weight [out, in] in the model's compute dtype
};

struct Linear {
  LinearFormat format = LinearFormat::dense;
  at::Tensor weight;
};

// y = x W^T for x [..., in].
at::Tensor linear_forward(const Linear& layer, const at::Tensor& x);
// Bytes the layer holds on its device.
int64_t linear_bytes(const Linear& layer);

}  // namespace qsweep
