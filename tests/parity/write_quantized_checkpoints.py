#!/usr/bin/env python3
"""Pre-quantized tiny Llama checkpoints in the published layouts, written without qsweep.

tests/test_quantized_checkpoint.cpp runs this with Debian's interpreter (numpy only: no torch,
safetensors or bitsandbytes here) and checks that qsweep's loader reads each directory into the
dequantized weights this script computes from its own codes:

  /usr/bin/python3 tests/parity/write_quantized_checkpoints.py --out DIR

writes DIR/<name>/{config.json, model.safetensors, expected_dequantized.safetensors} for

  gptq_tiny        GPTQ v1, 4-bit, groups of 32, asymmetric, act-order (a permuted g_idx)
  gptq_v2_tiny     GPTQModel's v2 (zero points stored as they are), 3-bit, symmetric, no g_idx
  awq_gemm_tiny    AutoAWQ's GEMM layout, 4-bit, groups of 32, zero points
                   saved, and the all-zero bias AutoGPTQ writes for every layer
  bnb_nf4_dq_tiny  bitsandbytes NF4 with double quantization, blocks of 32 (two nested blocks)
  bnb_fp4_tiny     bitsandbytes FP4 without double quantization, blocks of 64
  bnb_int8_tiny    bitsandbytes LLM.int8 (Linear8bitLt)

The layouts, and where they are defined:
  * safetensors: an 8-byte little-endian header length, a JSON header
    {name: {dtype, shape, data_offsets}} (offsets relative to the end of the header), the bytes.
  * GPTQ (AutoGPTQ qlinear pack(), GPTQModel TorchQuantLinear): qweight int32 [in*bits/32, out]
    holds the codes of consecutive input channels of one output column as a little-endian bit
    stream (3-bit codes straddle words: 10 codes, then 2 bits of the 11th, ...); qzeros int32
    [groups, out*bits/32] packs one zero point per output column the same way along the output
    dimension, as zero - 1 in v1 (checkpoint_format "gptq") and as the zero in v2; scales
    float16 [groups, out]; g_idx int32 [in], the group of each input channel.
    w[o, i] = scales[g_idx[i], o] * (q[i, o] - zero[g_idx[i], o]).
  * bitsandbytes 4-bit (nn/modules.py Linear4bit._save_to_state_dict, functional.py
    QuantState.as_dict(packed=True)): PREFIX.weight uint8 [ceil(n/2), 1], two codes a byte,
    the first element of the row-major weight in the high nibble; PREFIX.weight.absmax (float32
    per block, or uint8 codes of absmax - offset with double quant); .quant_map float32 [16];
    .nested_absmax float32 [ceil(blocks/256)] and .nested_quant_map float32 [256] with double
    quant; .quant_state.bitsandbytes__nf4|fp4 the UTF-8 bytes of json.dumps of quant_type,
    blocksize, dtype, shape (+ nested_blocksize, nested_dtype, nested_offset).
    w = quant_map[q] * absmax[block], absmax = nested_quant_map[qabsmax] * nested_absmax[block
    // 256] + offset with double quant (float32 throughout).
  * bitsandbytes 8-bit (Linear8bitLt._save_to_state_dict): PREFIX.weight int8 [out, in],
    PREFIX.SCB float32 [out] (absmax per row), PREFIX.weight_format uint8 scalar 0 ("row").
    w = weight * SCB / 127.
  * config.json quantization_config: transformers' BitsAndBytesConfig.to_dict() and the
    quantize_config AutoGPTQ / GPTQModel save.

Zero points of 0 are left out of the v1 fixture: v1 stores zero - 1 in `bits` bits, and AutoGPTQ
reads a stored 2^bits - 1 back as 2^bits where qsweep (and GPTQModel's v1 to v2 conversion)
wrap it to 0.
"""
import argparse
import json
import os
import struct

import numpy as np

LINEARS = [("self_attn.q_proj", "q"), ("self_attn.k_proj", "kv"), ("self_attn.v_proj", "kv"),
           ("self_attn.o_proj", "o"), ("mlp.gate_proj", "ff"), ("mlp.up_proj", "ff"),
           ("mlp.down_proj", "down")]

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64,
    "hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 1,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "max_position_embeddings": 256, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True, "hidden_act": "silu", "torch_dtype": "float16",
    "bos_token_id": 1, "eos_token_id": 2,
}

# [out, in] of each projection kind for CONFIG.
SHAPES = {"q": (64, 64), "kv": (32, 64), "o": (64, 64), "ff": (192, 64), "down": (64, 192)}

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
# FP4 (e2m1) magnitudes in bit-pattern order, over their maximum 12; bit 3 is the sign.
FP4 = [m / 12.0 for m in (0, 0.0625, 8, 12, 4, 6, 2, 3)] + [-m / 12.0 for m in (0, 0.0625, 8, 12, 4, 6, 2, 3)]

DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32",
          np.dtype("int8"): "I8", np.dtype("uint8"): "U8"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]  # np.ascontiguousarray would turn the 0-d weight_format into [1]
        a = a if a.flags.c_contiguous else a.copy()
        raw = a.tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def pack_stream(codes, bits):
    """Codes [n, lanes] packed along axis 0 as a little-endian bit stream into int32 [n*bits/32, lanes]."""
    n, lanes = codes.shape
    assert n * bits % 32 == 0
    words = np.zeros((n * bits // 32, lanes), dtype=np.uint64)
    for k in range(n):
        bit = k * bits
        word, shift = divmod(bit, 32)
        value = codes[k].astype(np.uint64) << np.uint64(shift)
        words[word] |= value & np.uint64(0xFFFFFFFF)
        if shift + bits > 32:
            words[word + 1] |= value >> np.uint64(32)
    return words.astype(np.uint32).view(np.int32)


def dense_tensors(rng):
    h, v = CONFIG["hidden_size"], CONFIG["vocab_size"]
    return {
        "model.embed_tokens.weight": (rng.standard_normal((v, h)) * 0.5).astype(np.float16),
        "model.layers.0.input_layernorm.weight": (1 + 0.1 * rng.standard_normal(h)).astype(np.float16),
        "model.layers.0.post_attention_layernorm.weight": (1 + 0.1 * rng.standard_normal(h)).astype(np.float16),
        "model.norm.weight": (1 + 0.1 * rng.standard_normal(h)).astype(np.float16),
    }


def gptq_layer(rng, out, inp, bits, group_size, sym, act_order, v2):
    maxq = 2 ** bits - 1
    groups = inp // group_size
    q = rng.integers(0, maxq + 1, size=(inp, out))
    if sym:
        zero = np.full((groups, out), 2 ** (bits - 1))
    else:
        zero = rng.integers(0 if v2 else 1, maxq + 1, size=(groups, out))
    scales = (rng.random((groups, out)) * 0.02 + 0.001).astype(np.float16)
    if act_order:
        # Channels quantized in a permuted order: channel i falls in the group of its position.
        position = np.argsort(rng.permutation(inp))
        g_idx = (position // group_size).astype(np.int32)
    else:
        g_idx = (np.arange(inp) // group_size).astype(np.int32)
    stored_zero = zero if v2 else (zero - 1) & maxq
    expected = (scales.astype(np.float32)[g_idx, :] *
                (q - zero[g_idx, :]).astype(np.float32)).T
    tensors = {"qweight": pack_stream(q, bits), "qzeros": pack_stream(stored_zero.T, bits).T,
               "scales": scales, "g_idx": g_idx}
    return tensors, np.ascontiguousarray(expected, dtype=np.float32)


# AutoAWQ's GEMM layout: 8 codes of 4 bits per int32 along the output dimension, in the order
# of awq/utils/packing_utils.py's AWQ_ORDER: nibble i of word j holds output column 8j + ORDER[i].
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def pack_awq(codes):
    rows, cols = codes.shape
    packed = np.zeros((rows, cols // 8), dtype=np.uint32)
    for i, column in enumerate(AWQ_ORDER):
        packed |= codes[:, column::8].astype(np.uint32) << np.uint32(4 * i)
    return packed.view(np.int32)


def write_awq(out_dir, name, seed, group_size):
    rng = np.random.default_rng(seed)
    tensors, expected = dense_tensors(rng), {}
    for module, kind in LINEARS:
        prefix = "model.layers.0." + module
        out, inp = SHAPES[kind]
        groups = inp // group_size
        q = rng.integers(0, 16, size=(inp, out))
        zero = rng.integers(0, 16, size=(groups, out))  # AWQ stores the zero point itself
        scales = (rng.random((groups, out)) * 0.02 + 0.001).astype(np.float16)
        g = np.arange(inp) // group_size
        expected[prefix] = np.ascontiguousarray(
            (scales.astype(np.float32)[g, :] * (q - zero[g, :]).astype(np.float32)).T)
        tensors[prefix + ".qweight"] = pack_awq(q)
        tensors[prefix + ".qzeros"] = pack_awq(zero)
        tensors[prefix + ".scales"] = scales
    # transformers' AwqConfig as AutoAWQ saves it
    qc = {"quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True,
          "version": "gemm", "modules_to_not_convert": None}
    save(out_dir, name, tensors, expected, qc)


def write_gptq(out_dir, name, seed, bits, group_size, sym, act_order, v2):
    rng = np.random.default_rng(seed)
    tensors, expected = dense_tensors(rng), {}
    for module, kind in LINEARS:
        prefix = "model.layers.0." + module
        out, inp = SHAPES[kind]
        layer, w = gptq_layer(rng, out, inp, bits, group_size, sym, act_order, v2)
        if v2:
            del layer["g_idx"]
            layer["bias"] = np.zeros(out, dtype=np.float16)
        for key, t in layer.items():
            tensors[prefix + "." + key] = t
        expected[prefix] = w
    if v2:  # GPTQModel's quantize_config
        qc = {"bits": bits, "group_size": group_size, "desc_act": act_order, "sym": sym,
              "lm_head": False, "quant_method": "gptq", "format": "gptq_v2",
              "meta": {"quantizer": ["gptqmodel:2.0.0"]}}
    else:  # AutoGPTQ's
        qc = {"bits": bits, "group_size": group_size, "damp_percent": 0.01,
              "desc_act": act_order, "static_groups": False, "sym": sym,
              "true_sequential": True, "model_name_or_path": None,
              "model_file_base_name": "model", "quant_method": "gptq",
              "checkpoint_format": "gptq"}
    save(out_dir, name, tensors, expected, qc)


def dynamic_map():
    """bitsandbytes' create_dynamic_map(signed=True): 7 exponent bits, both signs, 0 and 1."""
    values = []
    for i in range(7):
        bounds = np.linspace(0.1, 1.0, 2 ** i + 1)
        means = (bounds[:-1] + bounds[1:]) / 2 * 10.0 ** (i - 6)
        values += list(means) + list(-means)
    values += [0.0, 1.0]
    return np.array(sorted(values), dtype=np.float32)


def bnb4_layer(rng, out, inp, quant_type, blocksize, nested):
    n = out * inp
    blocks = -(-n // blocksize)
    codes = rng.integers(0, 16, size=n).astype(np.uint8)
    code = np.array(NF4 if quant_type == "nf4" else FP4, dtype=np.float32)
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).reshape(-1, 1)
    state = {"quant_type": quant_type, "blocksize": blocksize, "dtype": "float16",
             "shape": [out, inp]}
    tensors = {"": packed, ".quant_map": code}
    if nested:
        qabsmax = rng.integers(0, 256, size=blocks).astype(np.uint8)
        nested_absmax = (rng.random(-(-blocks // 256)) * 0.05 + 0.01).astype(np.float32)
        code2 = dynamic_map()
        offset = np.float32(0.03 + 0.01 * rng.random())
        absmax = code2[qabsmax] * nested_absmax[np.arange(blocks) // 256] + offset
        tensors.update({".absmax": qabsmax, ".nested_absmax": nested_absmax,
                        ".nested_quant_map": code2})
        state.update({"nested_blocksize": 256, "nested_dtype": "float32",
                      "nested_offset": float(offset)})
    else:
        absmax = (rng.random(blocks) * 0.1 + 0.01).astype(np.float32)
        tensors[".absmax"] = absmax
    tensors[".quant_state.bitsandbytes__" + quant_type] = np.frombuffer(
        json.dumps(state).encode("utf-8"), dtype=np.uint8)
    expected = (code[codes] * absmax[np.arange(n) // blocksize]).reshape(out, inp)
    return tensors, expected.astype(np.float32)


def bnb_config(load_in_4bit, quant_type="fp4", double_quant=False):
    return {"quant_method": "bitsandbytes", "_load_in_4bit": load_in_4bit,
            "_load_in_8bit": not load_in_4bit, "load_in_4bit": load_in_4bit,
            "load_in_8bit": not load_in_4bit, "llm_int8_threshold": 6.0,
            "llm_int8_skip_modules": None, "llm_int8_enable_fp32_cpu_offload": False,
            "llm_int8_has_fp16_weight": False, "bnb_4bit_quant_type": quant_type,
            "bnb_4bit_use_double_quant": double_quant, "bnb_4bit_compute_dtype": "float16",
            "bnb_4bit_quant_storage": "uint8"}


def write_bnb4(out_dir, name, seed, quant_type, blocksize, nested):
    rng = np.random.default_rng(seed)
    tensors, expected = dense_tensors(rng), {}
    for module, kind in LINEARS:
        prefix = "model.layers.0." + module
        layer, w = bnb4_layer(rng, *SHAPES[kind], quant_type, blocksize, nested)
        for key, t in layer.items():
            tensors[prefix + ".weight" + key] = t
        expected[prefix] = w
    save(out_dir, name, tensors, expected, bnb_config(True, quant_type, nested))


def write_bnb8(out_dir, name, seed):
    rng = np.random.default_rng(seed)
    tensors, expected = dense_tensors(rng), {}
    for module, kind in LINEARS:
        prefix = "model.layers.0." + module
        out, inp = SHAPES[kind]
        weight = rng.integers(-127, 128, size=(out, inp)).astype(np.int8)
        scb = (rng.random(out) * 0.5 + 0.05).astype(np.float32)
        tensors[prefix + ".weight"] = weight
        tensors[prefix + ".SCB"] = scb
        tensors[prefix + ".weight_format"] = np.array(0, dtype=np.uint8)
        expected[prefix] = (weight.astype(np.float32) * scb[:, None]) * np.float32(1.0 / 127.0)
    save(out_dir, name, tensors, expected, bnb_config(False))


def save(out_dir, name, tensors, expected, quantization_config):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    write_safetensors(os.path.join(d, "expected_dequantized.safetensors"), expected)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(CONFIG, quantization_config=quantization_config), f, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the checkpoints into")
    args = parser.parse_args()
    write_gptq(args.out, "gptq_tiny", 1, bits=4, group_size=32, sym=False, act_order=True, v2=False)
    write_gptq(args.out, "gptq_v2_tiny", 2, bits=3, group_size=32, sym=True, act_order=False, v2=True)
    write_bnb4(args.out, "bnb_nf4_dq_tiny", 3, "nf4", blocksize=32, nested=True)
    write_bnb4(args.out, "bnb_fp4_tiny", 4, "fp4", blocksize=64, nested=False)
    write_bnb8(args.out, "bnb_int8_tiny", 5)
    write_awq(args.out, "awq_gemm_tiny", 6, group_size=32)


if __name__ == "__main__":
    main()
