#pragma once
// Every projection of the model is a Linear: one plain struct per storage format, held in a
// variant, with one visit per operation in linear.cpp. The storage format says how the weight
// is held and multiplied; the method that chose its values (RTN, GPTQ, AWQ, bitsandbytes) lives
// in src/quant/ and is not recorded here: RTN, GPTQ and AWQ all produce an IntGroupWeight.
#include "qsweep/kernels/gemv_io.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <variant>

namespace qsweep {

// The weight [out, in] as it is, in the model's compute dtype.
struct DenseWeight {
  at::Tensor weight;
};

// Integer codes of `bits` per weight with a scale and zero point per group of `group_size`
// input channels, w = scale * (q - zero), in GPTQ's layout: `qweight` packs 32 / bits codes of
// consecutive input channels into each int32 (3-bit codes run across word boundaries), `zeros`
// packs one code per output column the same way along the output dimension.
// As in GPTQ checkpoints (AutoGPTQ's pack), `zeros` holds zero - 1 in `bits` bits; reading adds
// the 1 back modulo 2^bits, so a zero point of 0 (stored as all ones) survives the round trip.
struct IntGroupWeight {
  int bits = 4;               // 2, 3, 4 or 8
  int group_size = 128;       // input channels per group; equal to `in` for per-channel
  bool sym = true;            // symmetric: every zero point is 2^(bits-1)
  int64_t in = 0, out = 0;
  at::Tensor qweight;         // int32 [in * bits / 32, out]
  at::Tensor zeros;           // int32 [groups, out * bits / 32]: zero - 1, packed
  at::Tensor scales;          // [groups, out], compute dtype
  at::Tensor g_idx;           // int32 [in]: each input channel's group (act-order changes it)
  // g_idx is k / group_size (int_group_sequential), so the GPU kernels compute the groups
  // instead of reading them; false (the safe default) where that is not known.
  bool sequential_groups = false;
};

enum class Bnb4Type { nf4, fp4 };

// bitsandbytes' 4-bit blockwise format: codes into a 16-value table, two per byte (the first
// element in the high nibble), one absmax per `blocksize` consecutive elements of the row-major
// weight. With double quantization the absmax values, less their mean `offset`, are themselves
// quantized in blocks of 256 with the signed dynamic 8-bit code.
struct Bnb4Weight {
  Bnb4Type type = Bnb4Type::nf4;
  int64_t in = 0, out = 0;
  int blocksize = 64;
  at::Tensor packed;          // uint8 [ceil(out * in / 2)]
  at::Tensor code;            // float32 [16]: quant_map
  at::Tensor absmax;          // float32 [blocks]; without double quant only
  bool double_quant = false;
  at::Tensor qabsmax;         // uint8 [blocks]: absmax - offset, quantized
  at::Tensor absmax2;         // float32 [ceil(blocks / 256)]: nested_absmax
  at::Tensor code2;           // float32 [256]: nested_quant_map
  float offset = 0;           // mean of the absmax values
  at::Tensor offsets;         // float32 [ceil(blocks / 256)] or undefined: per nested block,
                              // in place of `offset`, where stacked parts keep their own
                              // (stacked_projections.h)
  at::ScalarType compute_dtype = at::kHalf;
};

// LLM.int8(): int8 weights with one absmax scale per output row. At run time the activations are
// quantized per row to int8, and the input columns whose magnitude exceeds `threshold` go through
// the compute dtype against the dequantized weight columns instead (none when threshold is 0).
struct Int8RowWeight {
  at::Tensor weight;          // int8 [out, in]
  at::Tensor row_absmax;      // float32 [out]: bitsandbytes' SCB
  double threshold = 6.0;
  at::ScalarType compute_dtype = at::kHalf;
};

using LinearWeight = std::variant<DenseWeight, IntGroupWeight, Bnb4Weight, Int8RowWeight>;

struct Linear {
  LinearWeight weight;
};

// y = x W^T for x [..., in], in x's dtype, with what `io` adds to it (qsweep/kernels/gemv_io.h):
// for a stacked gate|up projection (gate's rows over up's, stacked_projections.h) the MLP's
// product dtype(silu(gate)) * up [..., I]; the product of RMSNorm(x) instead of x's; the product
// added into a residual stream, which is returned. On a GPU the batch-1 GEMVs of the dense,
// NF4/FP4 and LLM.int8 formats fold these into their own kernel (LLM.int8 all but the norm);
// the other paths run the same operations around the product, with the same rounding.
at::Tensor linear_forward(const Linear& layer, const at::Tensor& x, const GemvIo& io = {});
// Bytes of every tensor the layer stores: codes, scales, zeros, absmax and second-level state.
int64_t linear_bytes(const Linear& layer);
// The weight [out, in] as the format represents it, in float32.
at::Tensor linear_dequantize(const Linear& layer);
// Input and output sizes.
int64_t linear_in_features(const Linear& layer);
int64_t linear_out_features(const Linear& layer);
// The layer with every tensor on `device` (quantizers that pack on the CPU move their result).
Linear linear_to(Linear layer, const at::Device& device);

}  // namespace qsweep
