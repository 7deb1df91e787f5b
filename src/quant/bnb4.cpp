#include "qsweep/quant/bnb4.h"

#include "qsweep/model/format_bnb4.h"
#include "qsweep/quant/quant_config.h"
#include "qsweep/util/error.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace qsweep {
namespace {

struct Blocks {
  std::vector<float> absmax;
  std::vector<uint8_t> codes;
};

// kQuantizeBlockwise: each block's absmax, then every element times 1.0f / absmax. A block of
// zeros has inv = inf and 0 * inf = NaN, which every code_of sends to code 0 as the kernel does.
Blocks quantize_blocks(const float* x, int64_t n, int64_t blocksize,
                       const std::function<uint8_t(float)>& code_of) {
  Blocks b;
  b.codes.reserve(n);
  for (int64_t start = 0; start < n; start += blocksize) {
    const int64_t end = std::min(n, start + blocksize);
    float absmax = 0.0f;
    for (int64_t i = start; i < end; ++i) absmax = std::max(absmax, std::fabs(x[i]));
    const float inv = 1.0f / absmax;
    b.absmax.push_back(absmax);
    for (int64_t i = start; i < end; ++i) b.codes.push_back(code_of(x[i] * inv));
  }
  return b;
}

std::function<uint8_t(float)> code_function(Bnb4Type type) {
  switch (type) {
    case Bnb4Type::nf4: return bnb_nf4_code_of;
    case Bnb4Type::fp4: return bnb_fp4_code_of;
  }
  fail("unknown bnb 4-bit type");
}

void check_arguments(const at::Tensor& w, int blocksize, at::ScalarType compute_dtype) {
  if (std::find(std::begin(kBnb4Blocksizes), std::end(kBnb4Blocksizes), blocksize) ==
      std::end(kBnb4Blocksizes))
    fail("bnb 4-bit blocksize {} is not one bitsandbytes accepts ({})", blocksize,
         fmt::join(kBnb4Blocksizes, ", "));
  if (compute_dtype != at::kHalf && compute_dtype != at::kBFloat16 && compute_dtype != at::kFloat)
    fail("bnb 4-bit compute_dtype must be float16, bfloat16 or float32");
  if (w.dim() != 2) fail("quantize_bnb4: the weight must be 2-D [out, in], got {} dims", w.dim());
}

// The two codes of a byte, the first element in the high nibble; an odd count pads with the
// code of 0 scaled by the last block (the kernel loads the missing element as 0).
at::Tensor pack_nibbles(const Blocks& b, const std::function<uint8_t(float)>& code_of) {
  std::vector<uint8_t> codes = b.codes;
  if (codes.size() % 2) codes.push_back(code_of(0.0f * (1.0f / b.absmax.back())));
  at::Tensor packed = at::empty({static_cast<int64_t>(codes.size() / 2)}, at::kByte);
  uint8_t* out = packed.data_ptr<uint8_t>();
  for (size_t i = 0; i < codes.size(); i += 2) out[i / 2] = uint8_t(codes[i] << 4 | codes[i + 1]);
  return packed;
}

// compress_statistics: the absmax values less their mean, quantized in blocks of 256 with the
// signed dynamic code. torch takes the float32 mean in its own summation order; the sum here is
// in double, the mean rounded once to float32.
void double_quantize(const std::vector<float>& absmax, Bnb4Weight& w) {
  double sum = 0;
  for (float a : absmax) sum += a;
  w.offset = static_cast<float>(sum / static_cast<double>(absmax.size()));
  std::vector<float> centered;
  for (float a : absmax) centered.push_back(a - w.offset);
  w.code2 = bnb_dynamic_map();
  const float* code2 = w.code2.data_ptr<float>();
  const Blocks nested = quantize_blocks(centered.data(), centered.size(), kBnbNestedBlocksize,
                                        [code2](float x) { return bnb_dynamic_code_of(code2, x); });
  w.qabsmax = at::tensor(at::ArrayRef<uint8_t>(nested.codes), at::kByte);
  w.absmax2 = at::tensor(at::ArrayRef<float>(nested.absmax), at::kFloat);
}

}  // namespace

uint8_t bnb_nf4_code_of(float x) {
  // dQuantizeNF4's decision tree; each threshold is the float32 midpoint of two codes, and a
  // value on a midpoint takes the lower code.
  if (x > 0.03979014977812767f) {
    if (x > 0.3893125355243683f) {
      if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 0b1111 : 0b1110;
      return x > 0.5016634166240692f ? 0b1101 : 0b1100;
    }
    if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 0b1011 : 0b1010;
    return x > 0.1202552504837513f ? 0b1001 : 0b1000;
  }
  if (x > -0.33967943489551544f) {
    if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 0b0111 : 0b0110;
    return x > -0.23460740596055984f ? 0b0101 : 0b0100;
  }
  if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 0b0011 : 0b0010;
  return x > -0.8480964004993439f ? 0b0001 : 0b0000;
}

uint8_t bnb_fp4_code_of(float x) {
  // dQuantizeFP4: the sign in bit 3 (set for x < 0, so -0 is +0), then a tree over |x| with the
  // kernel's thresholds, decimals a few ulp off the midpoints of the magnitudes over 12.
  const uint8_t sign = x < 0 ? 0b1000 : 0;
  x = std::fabs(x);
  if (x > 0.29166667f) {
    if (x > 0.583333f) return (x > 0.8333333f ? 0b0011 : 0b0010) + sign;
    return (x > 0.4166667f ? 0b0101 : 0b0100) + sign;
  }
  if (x > 0.0859375f) return (x > 0.20833333f ? 0b0111 : 0b0110) + sign;
  return (x > 0.00260417f ? 0b0001 : 0b0000) + sign;
}

uint8_t bnb_dynamic_code_of(const float* code, float x) {
  // dQuantize<0>: seven halving steps from the middle of the sorted code, remembering the last
  // pivot passed on each side, then the nearer of the final pivot and that neighbour.
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) return static_cast<uint8_t>(x > (upper + val) * 0.5f ? upper_pivot : pivot);
  return static_cast<uint8_t>(x < (lower + val) * 0.5f ? lower_pivot : pivot);
}

Bnb4Weight quantize_bnb4(const at::Tensor& w, Bnb4Type type, int blocksize, bool double_quant,
                         at::ScalarType compute_dtype) {
  check_arguments(w, blocksize, compute_dtype);
  const at::Tensor x = w.to(compute_dtype).to(at::kFloat).cpu().contiguous().view(-1);
  const std::function<uint8_t(float)> code_of = code_function(type);
  const Blocks blocks = quantize_blocks(x.data_ptr<float>(), x.numel(), blocksize, code_of);

  Bnb4Weight q;
  q.type = type;
  q.out = w.size(0);
  q.in = w.size(1);
  q.blocksize = blocksize;
  q.compute_dtype = compute_dtype;
  q.code = bnb4_code(type);
  q.packed = pack_nibbles(blocks, code_of);
  q.double_quant = double_quant;
  if (double_quant)
    double_quantize(blocks.absmax, q);
  else
    q.absmax = at::tensor(at::ArrayRef<float>(blocks.absmax), at::kFloat);
  return q;
}

}  // namespace qsweep
