#include "qsweep/model/linear.h"

#include "qsweep/util/error.h"

#include <ATen/ATen.h>

namespace qsweep {
namespace {

int64_t bytes_of(const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

// Formats whose kernels are not written yet refuse, rather than fall through to a wrong answer.
[[noreturn]] void unsupported(const char* operation, const char* format) {
  fail("{} of a {} linear layer is not implemented", operation, format);
}

}  // namespace

at::Tensor linear_forward(const Linear& layer, const at::Tensor& x) {
  struct Forward {
    const at::Tensor& x;
    at::Tensor operator()(const DenseWeight& w) const { return at::linear(x, w.weight); }
    at::Tensor operator()(const IntGroupWeight&) const { unsupported("forward", "int-group"); }
    at::Tensor operator()(const Bnb4Weight&) const { unsupported("forward", "bnb 4-bit"); }
    at::Tensor operator()(const Int8RowWeight&) const { unsupported("forward", "int8"); }
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
      return bytes_of(w.packed) + bytes_of(w.code) + bytes_of(w.absmax) + bytes_of(w.qabsmax) +
             bytes_of(w.absmax2) + bytes_of(w.code2);
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
    at::Tensor operator()(const IntGroupWeight&) const { unsupported("dequantize", "int-group"); }
    at::Tensor operator()(const Bnb4Weight&) const { unsupported("dequantize", "bnb 4-bit"); }
    at::Tensor operator()(const Int8RowWeight&) const { unsupported("dequantize", "int8"); }
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
