#include "qsweep/model/linear.h"

#include "qsweep/model/format_bnb4.h"
#include "qsweep/model/format_int8.h"
#include "qsweep/model/format_int_group.h"

#include <ATen/ATen.h>

namespace qsweep {
namespace {

int64_t bytes_of(const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

// The CPU reference of a stored format: its float32 weight, a float32 product, the result in
// x's dtype. This is the definition the CUDA kernels are checked against.
at::Tensor reference_forward(const at::Tensor& weight, const at::Tensor& x) {
  return at::matmul(x.to(at::kFloat), weight.to(x.device()).t()).to(x.scalar_type());
}

}  // namespace

at::Tensor linear_forward(const Linear& layer, const at::Tensor& x) {
  struct Forward {
    const at::Tensor& x;
    at::Tensor operator()(const DenseWeight& w) const { return at::linear(x, w.weight); }
    at::Tensor operator()(const IntGroupWeight& w) const {
      return reference_forward(int_group_dequantize(w), x);
    }
    at::Tensor operator()(const Bnb4Weight& w) const {
      return reference_forward(bnb4_dequantize(w), x);
    }
    at::Tensor operator()(const Int8RowWeight& w) const { return int8_rows_forward(w, x); }
  };
  return std::visit(Forward{x}, layer.weight);
}

int64_t linear_bytes(const Linear& layer) {
  struct Bytes {
    int64_t operator()(const DenseWeight& w) const { return bytes_of(w.weight); }
    int64_t operator()(const IntGroupWeight& w) const {
      return bytes_of(w.qweight) + bytes_of(w.zeros) + bytes_of(w.scales) + bytes_of(w.g_idx);
    }
    int64_t operator()(const Bnb4Weight& w) const {
      // The nested offset is a float32 scalar tensor in bitsandbytes' saved state.
      const int64_t offset = w.double_quant ? int64_t(sizeof(float)) : 0;
      return bytes_of(w.packed) + bytes_of(w.code) + bytes_of(w.absmax) + bytes_of(w.qabsmax) +
             bytes_of(w.absmax2) + bytes_of(w.code2) + offset;
    }
    int64_t operator()(const Int8RowWeight& w) const {
      return bytes_of(w.weight) + bytes_of(w.row_absmax);
    }
  };
  return std::visit(Bytes{}, layer.weight);
}

at::Tensor linear_dequantize(const Linear& layer) {
  struct Dequantize {
    at::Tensor operator()(const DenseWeight& w) const { return w.weight.to(at::kFloat); }
    at::Tensor operator()(const IntGroupWeight& w) const { return int_group_dequantize(w); }
    at::Tensor operator()(const Bnb4Weight& w) const { return bnb4_dequantize(w); }
    at::Tensor operator()(const Int8RowWeight& w) const { return int8_rows_dequantize(w); }
  };
  return std::visit(Dequantize{}, layer.weight);
}

int64_t linear_in_features(const Linear& layer) {
  struct In {
    int64_t operator()(const DenseWeight& w) const { return w.weight.size(1); }
    int64_t operator()(const IntGroupWeight& w) const { return w.in; }
    int64_t operator()(const Bnb4Weight& w) const { return w.in; }
    int64_t operator()(const Int8RowWeight& w) const { return w.weight.size(1); }
  };
  return std::visit(In{}, layer.weight);
}

int64_t linear_out_features(const Linear& layer) {
  struct Out {
    int64_t operator()(const DenseWeight& w) const { return w.weight.size(0); }
    int64_t operator()(const IntGroupWeight& w) const { return w.out; }
    int64_t operator()(const Bnb4Weight& w) const { return w.out; }
    int64_t operator()(const Int8RowWeight& w) const { return w.weight.size(0); }
  };
  return std::visit(Out{}, layer.weight);
}

}  // namespace qsweep
