#!/usr/bin/env python3
"""Expected bitsandbytes 4-bit states for a few seeded tensors, written to tests/data/bnb4_reference.json.

bitsandbytes needs a CUDA (or its own native) build that cannot be installed where qsweep is
developed, so this is an independent numpy transliteration of its reference algorithm; the C++
test (tests/test_format_bnb4.cpp) compares qsweep's quantizer against the file bit for bit.
Run with Debian's interpreter (numpy only):

  /usr/bin/python3 tests/parity/bnb_reference.py --out tests/data/bnb4_reference.json

Where each rule comes from (bitsandbytes-foundation/bitsandbytes, main as of 2026-08):
  * 4-bit code tables: bitsandbytes/functional.py get_4bit_type ("nf4" list; "fp4" list divided by
    its absolute maximum 12 in float32).
  * 4-bit blockwise quantization: csrc/kernels.cu kQuantizeBlockwise / kQuantizeBlockwiseSmall,
    the kernel transformers runs when it quantizes a layer on the GPU: absmax of each block of
    `blocksize` consecutive elements in float32, inv = 1.0f / absmax, each element times inv goes
    through dQuantizeNF4 or dQuantizeFP4 (decision trees, `x > threshold`), two codes per byte with
    the first element in the high nibble; a last partial block has its own absmax, and a missing
    last element of an odd count is quantized as 0. A block of zeros gives inv = inf and 0 * inf =
    NaN, which both trees send to code 0.
    The thresholds are float literals (`0.8614784181118011f`): a compiler rounds the decimal
    straight to float32, which for NF4 thresholds 0, 8, 12 and 14 lands one ulp away from the
    float32 midpoint of the table (the decimals print midpoints that are float32 ties), so they
    are parsed here the way a compiler does. The torch fallback in
    bitsandbytes/backends/default/ops.py (bucketize on float32 midpoints) therefore differs from
    the kernel in those ulps, divides the last partial block instead of multiplying by the
    reciprocal, maps zero blocks to code 7, and orders FP4's -0/+0 differently (FP4's
    thresholds are decimals a few ulp off the midpoints); the CUDA kernel is the reference here.
  * Valid 4-bit blocksizes: functional.py quantize_4bit (32, 64, ..., 4096).
  * Double quantization: functional.py quantize_4bit with compress_statistics=True:
    offset = absmax.mean(), then quantize_blockwise(absmax - offset, blocksize=256) against
    create_dynamic_map() (signed, 7 exponent bits, 8 bits); that kernel's General8bit case
    calls dQuantize<0> (kernels.cu), a 7-step binary search over the sorted code followed by a
    midpoint comparison, transliterated below. torch sums the mean in its own order; here (and in
    qsweep) the float32 absmax values are summed in double and the mean rounded to float32.
  * create_dynamic_map: functional.py create_dynamic_map. Its values go through torch.linspace
    on the CPU, whose float32 rounding depends on the CPU kernel torch dispatches to; we follow
    libtorch's x86-64 AVX2 kernel (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp
    linspace_kernel: step = (end - start) / (steps - 1), the first half counts up from start and
    the second half down from end with fused multiply-adds, and its vectorized loop (two 8-wide
    vectors per pass) fills each vector as first + j * step). That matches libtorch 1.13 on the
    machine the fixture was made on bit for bit; other kernels differ by an ulp in some entries.
    A checkpoint carries its own nested_quant_map, so loading never depends on this.
  * Dequantization: kernels.cu kDequantizeBlockwise: code[q] * absmax in float32; nested absmax =
    code2[qabsmax] * absmax2 (functional.py dequantize_blockwise), then + offset
    (functional.py dequantize_4bit), two separate float32 operations.

Inputs come from a 64-bit LCG shared with the C++ test: k / 2^shift with k in [-255, 255], values
exact in float16, bfloat16 and float32, so the cast to the compute dtype changes nothing.
"""
import argparse
import json
import math
from fractions import Fraction

import numpy as np

F = np.float32

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
FP4_UNSCALED = [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0,
                -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0]


def code_4bit(kind):
    data = np.array(NF4 if kind == "nf4" else FP4_UNSCALED, dtype=F)
    return data / np.abs(data).max()


def f32_literal(text):
    """The float32 a C or CUDA compiler makes of the literal `text`f: the decimal rounded once
    (going through a double first would round twice)."""
    exact = Fraction(text)
    x = F(float(text))
    near = [np.nextafter(x, F(-np.inf)), x, np.nextafter(x, F(np.inf))]
    return min(near, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.array(c).view(np.uint32)) & 1))


# dQuantizeNF4's thresholds in ascending order; the tree compares `x > t`.
NF4_THRESHOLDS = [f32_literal(t) for t in (
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011")]
# dQuantizeFP4's thresholds, in the order the tree uses them.
FP4_THRESHOLDS = [f32_literal(t) for t in (
    "0.29166667", "0.583333", "0.8333333", "0.4166667", "0.0859375", "0.20833333", "0.00260417")]


def quantize_nf4(x):
    # The balanced tree over sorted thresholds gives the number of thresholds below x; NaN
    # compares false everywhere and gets code 0.
    return 0 if math.isnan(x) else sum(1 for t in NF4_THRESHOLDS if x > t)


def quantize_fp4(x):
    # dQuantizeFP4, line for line.
    sign = 0b1000 if x < 0 else 0
    x = abs(x)
    t = FP4_THRESHOLDS
    if x > t[0]:
        if x > t[1]:
            return (0b0011 if x > t[2] else 0b0010) + sign
        return (0b0101 if x > t[3] else 0b0100) + sign
    if x > t[4]:
        return (0b0111 if x > t[5] else 0b0110) + sign
    return (0b0001 if x > t[6] else 0b0000) + sign


def torch_linspace_avx2(start, end, steps):
    start, end = F(start), F(end)
    step = (end - start) / F(steps - 1)
    half = steps // 2

    def fma(a, b, c):  # float32 a*b + c with one rounding (the product is exact in double)
        return F(np.float64(a) * np.float64(b) + np.float64(c))

    def scalar(i):
        return fma(step, F(i), start) if i < half else fma(-step, F(steps - i - 1), end)

    out, i = [], 0
    while i + 16 <= steps:
        for _ in range(2):
            first = scalar(i)
            out += [first] + [F(first + F(j) * step) for j in range(1, 8)]
            i += 8
    out += [scalar(j) for j in range(i, steps)]
    return np.array(out, dtype=F)


def dynamic_map():
    data = []
    for i in range(7):
        bounds = torch_linspace_avx2(0.1, 1.0, 2**i + 1)
        means = (bounds[:-1] + bounds[1:]) / F(2)
        scale = F(10.0 ** (i - 6))
        data += list(scale * means) + list(-(scale * means))
    data += [F(0), F(1)]
    return np.sort(np.array(data, dtype=F))


def quantize_dynamic(code, x):
    # dQuantize<0> (kernels.cu), line for line.
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = F(-1), F(1)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        return upper_pivot if x > (upper + val) * F(0.5) else pivot
    return lower_pivot if x < (lower + val) * F(0.5) else pivot


def blockwise(values, blocksize, quantize_one):
    """Absmax per block and one code per element, as kQuantizeBlockwise scales them."""
    absmax, codes = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in range(0, len(values), blocksize):
            block = values[b:b + blocksize]
            m = F(np.abs(block).max())
            inv = F(1) / m
            absmax.append(m)
            codes += [quantize_one(F(v * inv)) for v in block]
    return np.array(absmax, dtype=F), codes


def lcg_values(seed, n):
    state = seed & (2**64 - 1)
    out = []
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        k = ((state >> 33) % 511) - 255
        shift = 6 + ((state >> 50) % 6)
        out.append(F(k) / F(2**shift))
    return np.array(out, dtype=F)


CASES = [
    # name, type, compute dtype, shape, blocksize, double quant, seed, zero block
    ("nf4_fp16_b64", "nf4", "float16", [7, 45], 64, False, 1, True),
    ("fp4_bf16_b128", "fp4", "bfloat16", [3, 100], 128, False, 2, True),
    ("nf4_bf16_b32_dq", "nf4", "bfloat16", [40, 230], 32, True, 3, False),
    ("fp4_fp16_b64_dq", "fp4", "float16", [33, 520], 64, True, 4, False),
    # float32 blocks whose absmax is 1, so each value meets the tree unscaled: every threshold,
    # the float32 above it and the table midpoint (both signs for FP4). The input is stored.
    ("nf4_fp32_thresholds", "nf4", "float32", [2, 32], 64, False, None, False),
    ("fp4_fp32_thresholds", "fp4", "float32", [2, 32], 64, False, None, False),
]


def threshold_values(kind):
    code = np.sort(code_4bit(kind))
    mids = (code[:-1] + code[1:]) / F(2)
    thresholds = NF4_THRESHOLDS if kind == "nf4" else FP4_THRESHOLDS
    values = [F(1)]
    for t in thresholds:
        values += [t, np.nextafter(t, F(np.inf))]
    values += [m for m in mids if m != 0]
    if kind == "fp4":
        values += [-v for v in values[1:]] + [F(-0.0), F(-1e-4)]
    return np.array(values + [F(0)] * (64 - len(values)), dtype=F)


def hex_f32(a):
    return np.asarray(a, dtype="<f4").tobytes().hex()


def run_case(name, kind, dtype, shape, blocksize, dq, seed, zero_block, code2):
    n = shape[0] * shape[1]
    w = lcg_values(seed, n) if seed is not None else threshold_values(kind)
    if zero_block:
        w[blocksize:2 * blocksize] = 0
    one = quantize_nf4 if kind == "nf4" else quantize_fp4
    absmax, codes = blockwise(w, blocksize, one)
    if n % 2:  # the kernel loads the missing element as 0 and scales it with the last block
        with np.errstate(invalid="ignore", divide="ignore"):
            codes.append(one(F(0) * (F(1) / absmax[-1])))
    packed = bytes((codes[i] << 4) | codes[i + 1] for i in range(0, len(codes), 2))
    code = code_4bit(kind)
    case = {"name": name, "type": kind, "compute_dtype": dtype, "shape": shape,
            "blocksize": blocksize, "double_quant": dq, "seed": seed, "zero_block": zero_block,
            "packed": packed.hex(), "code": hex_f32(code)}
    if seed is None:
        case["input"] = hex_f32(w)
    if dq:
        offset = F(np.sum(absmax.astype(np.float64)) / len(absmax))
        absmax2, qabsmax = blockwise(absmax - offset, 256, lambda x: quantize_dynamic(code2, x))
        resolved = code2[np.array(qabsmax)] * absmax2[np.arange(len(qabsmax)) // 256] + offset
        case.update(offset=hex_f32([offset]), qabsmax=bytes(qabsmax).hex(),
                    absmax2=hex_f32(absmax2), resolved_absmax=hex_f32(resolved))
        absmax = resolved
    else:
        case["absmax"] = hex_f32(absmax)
    deq = code[np.array(codes[:n])] * absmax[np.arange(n) // blocksize]
    if n <= 1024:
        case["dequantized"] = hex_f32(deq)
    return case


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    code2 = dynamic_map()
    doc = {"source": "tests/parity/bnb_reference.py", "dynamic_map": hex_f32(code2),
           "cases": [run_case(*c, code2) for c in CASES]}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
