#pragma once
// bitsandbytes' 4-bit storage (Bnb4Weight): its code tables and dequantization. The quantizer,
// which chooses the codes, is in qsweep/quant/bnb4.h.
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

#include <vector>

namespace qsweep {

// Block size of the second-level (double) quantization of the absmax values.
constexpr int kBnbNestedBlocksize = 256;

// The 16 values a code indexes, float32 [16] (functional.py get_4bit_type): NF4 sorted, FP4
// in bit-pattern order with the sign in bit 3.
at::Tensor bnb4_code(Bnb4Type type);
// create_dynamic_map(signed=True): the sorted 256-value code of the nested absmax, float32.
at::Tensor bnb_dynamic_map();

// The absmax of every block, float32 [blocks]: stored, or rebuilt from the nested state as
// code2[qabsmax] * absmax2 + offset.
at::Tensor bnb4_block_absmax(const Bnb4Weight& w);
// code[q] * absmax of each element, float32 [out, in].
at::Tensor bnb4_dequantize(const Bnb4Weight& w);
// The 4-bit codes, uint8 [out * in], unpacked high nibble first.
at::Tensor bnb4_unpack(const Bnb4Weight& w);

}  // namespace qsweep
