#pragma once
// Pre-quantized Hugging Face checkpoints: the linear layers' tensors as transformers +
// bitsandbytes and GPTQ (AutoGPTQ / GPTQModel, v1 layout) save them, read into and written from
// qsweep's storage structs (model/linear.h). The formats, per linear module PREFIX
// ("model.layers.0.self_attn.q_proj"):
//   bitsandbytes 4-bit (nn/modules.py Linear4bit._save_to_state_dict, QuantState.as_dict(packed)):
//     PREFIX.weight                                uint8 [ceil(out*in/2), 1]  two codes a byte
//     PREFIX.weight.absmax                         float32 [blocks], or uint8 [blocks] nested
//     PREFIX.weight.quant_map                      float32 [16]
//     PREFIX.weight.nested_absmax                  float32 [ceil(blocks/256)]    nested only
//     PREFIX.weight.nested_quant_map               float32 [256]                 nested only
//     PREFIX.weight.quant_state.bitsandbytes__nf4  uint8 [bytes]: JSON of quant_type, blocksize,
//       (or __fp4)                                 dtype, shape and nested_blocksize,
//                                                  nested_dtype, nested_offset
//   bitsandbytes 8-bit (Linear8bitLt._save_to_state_dict):
//     PREFIX.weight int8 [out, in], PREFIX.SCB float32 [out], PREFIX.weight_format uint8 [] = 0
//   GPTQ: PREFIX.qweight int32 [in*bits/32, out], PREFIX.qzeros int32 [groups, out*bits/32]
//     (zero - 1 in v1), PREFIX.scales float16 [groups, out], PREFIX.g_idx int32 [in].
#include "qsweep/model/checkpoint_quantization.h"
#include "qsweep/model/model.h"
#include "qsweep/model/safetensors.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace qsweep {

// The linear module PREFIX [out, in] of a checkpoint whose config.json says `stored`: in the
// storage struct of that format when PREFIX's quantized tensors are there, else dense in
// `dtype` (modules a quantizer skipped). Every tensor's dtype and shape is checked; errors name
// the file, the tensor and the quant_state key.
Linear read_checkpoint_linear(const WeightFiles& files, const CheckpointQuantization& stored,
                              const std::string& prefix, int64_t out, int64_t in,
                              at::ScalarType dtype, const at::Device& device);

// Writes `model`, quantized by quantize_model, as the Hugging Face directory `out`: config.json
// (source_dir's, with quantization_config and torch_dtype), model.safetensors with the
// quantized linears in their format and every other tensor in `dtype`, and source_dir's
// tokenizer and generation files. Every quantized linear must share one format.
void write_quantized_checkpoint(const Model& model, const std::string& source_dir, DType dtype,
                                const std::string& out);

// The quant_state JSON of a bitsandbytes 4-bit layer, byte for byte as Python's json.dumps
// writes QuantState.as_dict's non-tensor items.
std::string bnb4_quant_state_json(const Bnb4Weight& w);

}  // namespace qsweep
