#include "qsweep/linear.h"

#include <ATen/ATen.h>

namespace qsweep {

at::Tensor linear_forward(const Linear& layer, const at::Tensor& x) {
  switch (layer.format) {
    case LinearFormat::dense: return at::linear(x, layer.weight);
  }
  return {};
}

int64_t linear_bytes(const Linear& layer) {
  switch (layer.format) {
    case LinearFormat::dense: return layer.weight.numel() * layer.weight.element_size();
  }
  return 0;
}

}  // namespace qsweep
