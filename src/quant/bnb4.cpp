#include "qsweep/quant/bnb4.h"

#include "qsweep/model/format_bnb4.h"
#include "qsweep/quant/quant_config.h"
#include "qsweep/util/error.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace qsweep {
namespace {

// dQuantizeNF4's decision tree, flattened: the float32 midpoints between neighbouring codes,
// ascending. A value's code is the number of midpoints below it (a value on a midpoint takes the
// lower code; NaN, from a block of zeros scaled by 1 / 0, compares below all and takes code 0).
constexpr float kNf4Midpoints[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,  0.2035212516784668f,  0.2920137718319893f,  0.3893125355243683f,
    0.5016634166240692f,  0.6427869200706482f,  0.8614784181118011f};
// dQuantizeFP4's tree over |x|: its thresholds, ascending (decimals a few ulp off the midpoints
// of the magnitudes over 12, as the kernel has them), and the magnitude code of each interval.
constexpr float kFp4Thresholds[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
                                     0.4166667f,  0.583333f,  0.8333333f};
constexpr uint8_t kFp4Magnitude[8] = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
constexpr uint8_t kFp4Sign = 0b1000;  // set for x < 0 only, so -0 is +0

template <size_t N>
int count_below(const float (&thresholds)[N], float x) {
  int n = 0;
  for (float t : thresholds) n += x > t;
  return n;
}

at::Tensor threshold_tensor(at::ArrayRef<float> values, const at::Device& device) {
  return at::tensor(values, at::kFloat).to(device);
}

// The codes of x (already scaled by its block's 1 / absmax), elementwise on x's device: the
// tensor form of bnb_nf4_code_of and bnb_fp4_code_of, from the same tables.
at::Tensor codes_of(const at::Tensor& x, Bnb4Type type) {
  const at::Tensor finite = at::nan_to_num(x, /*nan=*/-2.0);  // NaN takes code 0, below -1
  switch (type) {
    case Bnb4Type::nf4:
      return at::bucketize(finite, threshold_tensor(kNf4Midpoints, x.device())).to(at::kByte);
    case Bnb4Type::fp4: {
      const at::Tensor interval =
          at::bucketize(finite.abs().masked_fill(x.isnan(), 0), threshold_tensor(kFp4Thresholds, x.device()));
      const at::Tensor magnitude =
          at::tensor(at::ArrayRef<uint8_t>(kFp4Magnitude), at::kByte).to(x.device()).index_select(0, interval.view(-1));
      return magnitude.view(x.sizes()).bitwise_or((x < 0).to(at::kByte) * kFp4Sign);
    }
  }
  fail("unknown bnb 4-bit type");
}

// kQuantizeBlockwise on x [n] (float32, any device): each block's absmax, then every element
// times 1.0f / absmax (a block of zeros has inv = inf, and 0 * inf = NaN takes code 0). The
// tail block is padded with zeros, which change no absmax; an odd n keeps the pad's code as the
// low nibble of the last byte, as the kernel loads the missing element as 0.
struct Blocks {
  at::Tensor absmax;  // [blocks] float32
  at::Tensor codes;   // [n rounded up to even] uint8
};

Blocks quantize_blocks(const at::Tensor& x, int64_t blocksize, Bnb4Type type) {
  const int64_t n = x.numel(), blocks = (n + blocksize - 1) / blocksize;
  const at::Tensor padded = at::constant_pad_nd(x, {0, blocks * blocksize - n}).view({blocks, blocksize});
  Blocks b;
  b.absmax = padded.abs().amax(1);
  const at::Tensor inv = at::reciprocal(b.absmax).unsqueeze(1);
  b.codes = codes_of(padded * inv, type).view(-1).narrow(0, 0, n + n % 2);
  return b;
}

at::Tensor pack_nibbles(const at::Tensor& codes) {
  const at::Tensor pairs = codes.view({-1, 2});
  return pairs.select(1, 0).bitwise_left_shift(4).bitwise_or(pairs.select(1, 1)).contiguous();
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

// compress_statistics: the absmax values less their mean, quantized in blocks of 256 with the
// signed dynamic code (kQuantizeBlockwise again, on the host: there is one absmax per 64
// weights). torch takes the float32 mean in its own summation order; the sum here is in double,
// the mean rounded once to float32.
void double_quantize(const at::Tensor& absmax_tensor, Bnb4Weight& w) {
  const at::Tensor host = absmax_tensor.cpu().contiguous();
  const float* absmax = host.data_ptr<float>();
  const int64_t n = host.numel();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += absmax[i];
  w.offset = static_cast<float>(sum / static_cast<double>(n));
  w.code2 = bnb_dynamic_map();
  const float* code2 = w.code2.data_ptr<float>();
  std::vector<float> centered(n);
  for (int64_t i = 0; i < n; ++i) centered[i] = static_cast<float>(absmax[i] - w.offset);
  std::vector<uint8_t> codes(n);
  std::vector<float> nested_absmax;
  for (int64_t start = 0; start < n; start += kBnbNestedBlocksize) {
    const int64_t end = std::min(n, start + kBnbNestedBlocksize);
    float block_max = 0.0f;
    for (int64_t i = start; i < end; ++i) block_max = std::max(block_max, std::fabs(centered[i]));
    const float inv = 1.0f / block_max;
    nested_absmax.push_back(block_max);
    for (int64_t i = start; i < end; ++i)
      codes[i] = bnb_dynamic_code_of(code2, centered[i] * inv);
  }
  const at::Device device = absmax_tensor.device();
  w.qabsmax = at::tensor(at::ArrayRef<uint8_t>(codes), at::kByte).to(device);
  w.absmax2 = at::tensor(at::ArrayRef<float>(nested_absmax), at::kFloat).to(device);
  w.code2 = w.code2.to(device);
}

}  // namespace

uint8_t bnb_nf4_code_of(float x) { return static_cast<uint8_t>(count_below(kNf4Midpoints, x)); }

uint8_t bnb_fp4_code_of(float x) {
  const uint8_t sign = x < 0 ? kFp4Sign : 0;
  return kFp4Magnitude[count_below(kFp4Thresholds, std::fabs(x))] | sign;
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
  // On the weight's device: a GPU quantizes a 1B model in well under a second.
  const at::Tensor x = w.to(compute_dtype).to(at::kFloat).contiguous().view(-1);
  const Blocks blocks = quantize_blocks(x, blocksize, type);

  Bnb4Weight q;
  q.type = type;
  q.out = w.size(0);
  q.in = w.size(1);
  q.blocksize = blocksize;
  q.compute_dtype = compute_dtype;
  q.code = bnb4_code(type).to(w.device());
  q.packed = pack_nibbles(blocks.codes);
  q.double_quant = double_quant;
  if (double_quant)
    double_quantize(blocks.absmax, q);
  else
    q.absmax = blocks.absmax;
  return q;
}

}  // namespace qsweep
