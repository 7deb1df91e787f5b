#include "qsweep/model/linear.h"

#include "qsweep/model/dequantized_weights.h"
#include "qsweep/model/format_bnb4.h"
#include "qsweep/model/format_int8.h"
#include "qsweep/model/format_int_group.h"

#include "qsweep/util/error.h"

#include "layer_ops.h"

#include <ATen/ATen.h>

#include <map>
#include <tuple>

#ifdef QSWEEP_CUDA
#include "qsweep/kernels/decode_kernels.h"
#include "qsweep/kernels/dense_gemv.h"
#include "qsweep/kernels/quant_kernels.h"

#include <c10/cuda/CUDAGraphsC10Utils.h>
#endif

namespace qsweep {

// The open scope's dense weights, by the stored tensor they were made from, its rows (a stacked
// projection and its first part start at the same address) and the dtype they were made in.
struct DequantizedWeights::Weights {
  std::map<std::tuple<const void*, int64_t, int>, at::Tensor> by_source;
};

namespace {

thread_local DequantizedWeights::Weights* open_weights = nullptr;

// The weight `dequantize` makes from `stored`, made once per open DequantizedWeights scope.
template <typename Dequantize>
at::Tensor dequantized(const at::Tensor& stored, int64_t out, at::ScalarType dtype,
                       Dequantize&& dequantize) {
  if (!open_weights) return dequantize();
  const auto key = std::make_tuple(stored.data_ptr(), out, static_cast<int>(dtype));
  if (const auto it = open_weights->by_source.find(key); it != open_weights->by_source.end())
    return it->second;
#ifdef QSWEEP_CUDA
  // What a capture allocates belongs to its graph's pool: it is not the scope's to keep.
  if (stored.is_cuda() &&
      c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None)
    return dequantize();
#endif
  return open_weights->by_source.emplace(key, dequantize()).first->second;
}

int64_t bytes_of(const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

// The MLP's product dtype(silu(gate)) * up of a stacked gate|up product y's halves.
at::Tensor silu_of_halves(const at::Tensor& y) {
  const int64_t half = y.size(-1) / 2;
#ifdef QSWEEP_CUDA
  if (y.is_cuda()) {
    const at::Tensor product = cuda::silu_of_halves(y.reshape({-1, y.size(-1)}));
    std::vector<int64_t> shape(y.sizes().begin(), y.sizes().end());
    shape.back() = half;
    return product.view(shape);
  }
#endif
  return at::silu(y.narrow(-1, 0, half)) * y.narrow(-1, half, half);
}

// transformers' RMSNorm of x's rows with io's norm: add_rms_norm on a GPU (the values the GEMVs'
// prologue multiplies), the libtorch operations elsewhere.
at::Tensor normed(const at::Tensor& x, const GemvIo& io) {
#ifdef QSWEEP_CUDA
  if (x.is_cuda())
    return cuda::normed_rows(x.reshape({-1, x.size(-1)}).contiguous(), io).view(x.sizes());
#endif
  return ops::rms_norm(x, io.norm_weight, io.norm_eps);
}

// `io` around a product that folds none of it: the norm before, SiLU * up or the residual add
// after. product(x') is the plain product of x' [..., in].
template <typename Product>
at::Tensor around(const at::Tensor& x, const GemvIo& io, Product&& product) {
  const at::Tensor y = product(io.is_normed() ? normed(x, io) : x);
  if (io.output == GemvOutput::silu_gate_up) return silu_of_halves(y);
  return io.adds() ? io.residual.add_(y.view(io.residual.sizes())) : y;
}

// The CPU reference of a stored format: its float32 weight, a float32 product, the result in
// x's dtype. This is the definition the CUDA kernels are checked against.
at::Tensor reference_forward(const at::Tensor& weight, const at::Tensor& x) {
  return at::matmul(x.to(at::kFloat), weight.to(x.device()).t()).to(x.scalar_type());
}

#ifdef QSWEEP_CUDA
// Up to this many rows (decode of a batch) the kernels that dequantize on the fly win: a GEMV
// for the smallest batches, a tensor-core tile kernel from cuda::kTensorCoreRows. Beyond it
// (large decode batches, prefill) dequantizing into the compute dtype for cuBLAS does: its
// matrix rate then outweighs writing and rereading the weight. Both crossovers are read off the
// kernel benchmark (bench/bench_kernels.cpp; H200 figures in docs/performance.md): at 64 rows the
// tile kernel and dequantize + cuBLAS are even on the 8192 x 2048 shape, at 128 cuBLAS is ahead.
constexpr int64_t kFusedMaxRows = 64;

bool half_type(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

// x [..., in] as the 2-D [rows, in] the kernels take, in the weight's compute dtype, and back.
at::Tensor rows_of(const at::Tensor& x, at::ScalarType dtype) {
  return x.reshape({-1, x.size(-1)}).to(dtype).contiguous();
}
at::Tensor shaped_like(const at::Tensor& y, const at::Tensor& x) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = y.size(-1);
  return y.to(x.scalar_type()).view(shape);
}

// What a kernel's result becomes: the residual it added into, or its product in x's shape.
at::Tensor result_of(const at::Tensor& y, const at::Tensor& x, const GemvIo& io) {
  return io.adds() ? io.residual : shaped_like(y, x);
}

// The kernels' view of w: without act-order, and with groups of a power-of-two size or a single
// one (as GPTQ, AWQ and RTN make them), the groups are computed, not read.
cuda::IntGroupTensors int_group_tensors(const IntGroupWeight& w) {
  const bool computed = w.sequential_groups && (w.group_size >= w.in ||
                                                (w.group_size & (w.group_size - 1)) == 0);
  return {w.qweight, w.zeros, w.scales, computed ? at::Tensor() : w.g_idx, w.bits, w.in,
          w.group_size};
}

// The rows of x [..., in]: the M of its 2-D form.
int64_t rows_in(const at::Tensor& x) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  return rows;
}

// The fused kernels fold `io` where x is in the scales' dtype (the norm weight and the residual
// are in x's); otherwise the conversion comes between, and `io` goes around.
at::Tensor cuda_forward(const IntGroupWeight& w, const at::Tensor& x, const GemvIo& io) {
  const cuda::IntGroupTensors t = int_group_tensors(w);
  if (rows_in(x) <= kFusedMaxRows && x.scalar_type() == w.scales.scalar_type())
    return result_of(cuda::int_group_matmul(rows_of(x, w.scales.scalar_type()), t,
                                            cuda::MatmulPath::automatic, io),
                     x, io);
  return around(x, io, [&](const at::Tensor& in) {
    const at::Tensor x2 = rows_of(in, w.scales.scalar_type());
    if (x2.size(0) <= kFusedMaxRows) return shaped_like(cuda::int_group_matmul(x2, t), in);
    const at::Tensor weight = dequantized(w.qweight, w.out, x2.scalar_type(),
                                          [&] { return cuda::int_group_dequantize(t); });
    return shaped_like(at::matmul(x2, weight.t()), in);
  });
}

// The fused kernels fold `io` where x is in their compute dtype (the norm weight and the
// residual are in x's); otherwise the conversion comes between, and `io` goes around.
at::Tensor cuda_forward(const Bnb4Weight& w, const at::Tensor& x, const GemvIo& io) {
  const cuda::Bnb4Tensors t{w.packed,  w.code,    w.double_quant ? at::Tensor() : w.absmax,
                            w.qabsmax, w.absmax2, w.code2,
                            w.offsets, w.offset,  w.blocksize,
                            w.out,     w.in};
  if (rows_in(x) <= kFusedMaxRows && x.scalar_type() == w.compute_dtype)
    return result_of(
        cuda::bnb4_matmul(rows_of(x, w.compute_dtype), t, cuda::MatmulPath::automatic, io), x, io);
  return around(x, io, [&](const at::Tensor& in) {
    const at::Tensor x2 = rows_of(in, w.compute_dtype);
    if (x2.size(0) <= kFusedMaxRows) return shaped_like(cuda::bnb4_matmul(x2, t), in);
    const at::Tensor weight = dequantized(w.packed, w.out, w.compute_dtype,
                                          [&] { return cuda::bnb4_dequantize(t, w.compute_dtype); });
    return shaped_like(at::matmul(x2, weight.t()), in);
  });
}

// LLM.int8 for more rows than the fused kernels serve: x^ (xq * rowmax / 127 outside the outlier
// columns, x inside them) times the dense weight CB * SCB / 127 on cuBLAS, the sum the tile
// kernel takes from cuda::kTensorCoreRows rows in one kernel. Equal to bitsandbytes' int8 GEMM
// plus outlier product up to 16-bit rounding of the operands, and needing no host sync (the
// outlier columns stay on the device), so it also runs inside a decode step's CUDA graph; the
// dense weight is kept for a generate call like the 4-bit formats' (DequantizedWeights).
at::Tensor cuda_forward(const Int8RowWeight& w, const at::Tensor& x, const GemvIo& io) {
  if (rows_in(x) <= kFusedMaxRows && x.scalar_type() == w.compute_dtype)
    return result_of(cuda::int8_matmul(rows_of(x, w.compute_dtype), w.weight, w.row_absmax,
                                       w.threshold, {}, cuda::MatmulPath::automatic, io),
                     x, io);
  return around(x, io, [&](const at::Tensor& in) {
    const at::Tensor x2 = rows_of(in, w.compute_dtype);
    if (x2.size(0) <= kFusedMaxRows)
      return shaped_like(cuda::int8_matmul(x2, w.weight, w.row_absmax, w.threshold), in);
    const at::Tensor weight = dequantized(w.weight, w.weight.size(0), x2.scalar_type(), [&] {
      return cuda::int8_dequantize(w.weight, w.row_absmax, x2.scalar_type());
    });
    return shaped_like(at::matmul(cuda::int8_activations(x2, w.threshold), weight.t()), in);
  });
}

// The kernels compute in fp16/bf16 on a GPU; everything else takes the reference path.
bool use_kernels(const at::Tensor& x, at::ScalarType compute) {
  return x.is_cuda() && half_type(compute);
}

// One row against a decode-sized 16-bit dense weight takes the GEMV, which overlaps the kernel
// before it (cuBLAS does not); the rest, cuBLAS. Measured on an H200 (docs/performance.md,
// session 10): with the GEMV for up to 4 rows the 1B bf16 decode step went from 1.085 to 1.037 ms
// but batch 4 fell from 3,506 to 2,650 tokens/s (the GEMV takes 17 us for 8192 x 2048 at 4 rows,
// cuBLAS 11), and cuBLAS streams the 525 MB lm_head 8 % faster than the GEMV.
constexpr int64_t kDenseGemvMaxBytes = int64_t{128} << 20;

at::Tensor cuda_forward(const DenseWeight& w, const at::Tensor& x, const GemvIo& io) {
  const at::Tensor x2 = x.reshape({-1, x.size(-1)});
  if (x2.size(0) == 1 && static_cast<int64_t>(w.weight.nbytes()) <= kDenseGemvMaxBytes &&
      cuda::dense_gemv_supported(x2, w.weight))
    return result_of(cuda::dense_gemv(x2, w.weight, io), x, io);
  return around(x, io, [&](const at::Tensor& in) { return at::linear(in, w.weight); });
}
#endif

// The layer's forward on x with `io`: the formats' GPU kernels where x's dtype is their compute
// dtype, the CPU references elsewhere.
at::Tensor forward(const Linear& layer, const at::Tensor& x, const GemvIo& io) {
  struct Forward {
    const at::Tensor& x;
    const GemvIo& io;
    at::Tensor operator()(const DenseWeight& w) const {
#ifdef QSWEEP_CUDA
      if (use_kernels(x, w.weight.scalar_type())) return cuda_forward(w, x, io);
#endif
      return around(x, io, [&](const at::Tensor& in) { return at::linear(in, w.weight); });
    }
    at::Tensor operator()(const IntGroupWeight& w) const {
#ifdef QSWEEP_CUDA
      if (use_kernels(x, w.scales.scalar_type())) return cuda_forward(w, x, io);
#endif
      return around(x, io, [&](const at::Tensor& in) {
        return reference_forward(
            dequantized(w.qweight, w.out, at::kFloat, [&] { return int_group_dequantize(w); }), in);
      });
    }
    at::Tensor operator()(const Bnb4Weight& w) const {
#ifdef QSWEEP_CUDA
      if (use_kernels(x, w.compute_dtype)) return cuda_forward(w, x, io);
#endif
      return around(x, io, [&](const at::Tensor& in) {
        return reference_forward(
            dequantized(w.packed, w.out, at::kFloat, [&] { return bnb4_dequantize(w); }), in);
      });
    }
    at::Tensor operator()(const Int8RowWeight& w) const {
#ifdef QSWEEP_CUDA
      if (use_kernels(x, w.compute_dtype)) return cuda_forward(w, x, io);
#endif
      return around(x, io, [&](const at::Tensor& in) { return int8_rows_forward(w, in); });
    }
  };
  return std::visit(Forward{x, io}, layer.weight);
}

}  // namespace

at::Tensor linear_forward(const Linear& layer, const at::Tensor& x, const GemvIo& io) {
  QSWEEP_CHECK(io.output != GemvOutput::silu_gate_up || linear_out_features(layer) % 2 == 0,
               "linear_forward: a stacked gate|up projection has an even number of rows, got {}",
               linear_out_features(layer));
  return forward(layer, x, io);
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
             bytes_of(w.absmax2) + bytes_of(w.code2) + bytes_of(w.offsets) + offset;
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

namespace qsweep {

Linear linear_to(Linear layer, const at::Device& device) {
  auto move = [&](at::Tensor& t) {
    if (t.defined()) t = t.to(device);
  };
  std::visit(
      [&](auto& w) {
        using W = std::decay_t<decltype(w)>;
        if constexpr (std::is_same_v<W, DenseWeight>) move(w.weight);
        if constexpr (std::is_same_v<W, IntGroupWeight>)
          for (at::Tensor* t : {&w.qweight, &w.zeros, &w.scales, &w.g_idx}) move(*t);
        if constexpr (std::is_same_v<W, Bnb4Weight>)
          for (at::Tensor* t :
               {&w.packed, &w.code, &w.absmax, &w.qabsmax, &w.absmax2, &w.code2, &w.offsets})
            move(*t);
        if constexpr (std::is_same_v<W, Int8RowWeight>)
          for (at::Tensor* t : {&w.weight, &w.row_absmax}) move(*t);
      },
      layer.weight);
  return layer;
}

DequantizedWeights::DequantizedWeights() : weights_(std::make_unique<Weights>()) {
  if (open_weights) fail("internal error: a DequantizedWeights scope is already open on this thread");
  open_weights = weights_.get();
}

DequantizedWeights::~DequantizedWeights() { open_weights = nullptr; }

size_t DequantizedWeights::size() const { return weights_->by_source.size(); }

}  // namespace qsweep
