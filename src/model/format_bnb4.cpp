#include "qsweep/model/format_bnb4.h"

#include "qsweep/util/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace qsweep {
namespace {

at::Tensor float_tensor(const std::vector<float>& values) {
  return at::tensor(at::ArrayRef<float>(values), at::kFloat);
}

// torch.linspace(start, end, steps) in float32 as libtorch's x86-64 AVX2 CPU kernel rounds it
// (RangeFactoriesKernel.cpp): the first half counts up from start and the second half down from
// end, each a fused multiply-add; the vectorized loop, two 8-wide vectors per pass, fills each
// vector from its first element by adding j * step. create_dynamic_map's values come from this
// call, so its last bits depend on the CPU kernel torch ran (tests/parity/bnb_reference.py).
std::vector<float> torch_linspace(float start, float end, int steps) {
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int half = steps / 2;
  auto at_index = [&](int i) {
    return i < half ? std::fma(step, static_cast<float>(i), start)
                    : std::fma(-step, static_cast<float>(steps - i - 1), end);
  };
  std::vector<float> out;
  int i = 0;
  for (; i + 16 <= steps; i += 16) {
    for (int first_index : {i, i + 8}) {
      const float first = at_index(first_index);
      out.push_back(first);
      for (int j = 1; j < 8; ++j) out.push_back(first + static_cast<float>(j) * step);
    }
  }
  for (; i < steps; ++i) out.push_back(at_index(i));
  return out;
}

}  // namespace

at::Tensor bnb4_code(Bnb4Type type) {
  switch (type) {
    case Bnb4Type::nf4:
      // Quantiles of N(0, 1) scaled to [-1, 1], with an exact zero (QLoRA).
      return float_tensor({-1.0f, -0.6961928009986877f, -0.5250730514526367f,
                           -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
                           -0.09105003625154495f, 0.0f, 0.07958029955625534f,
                           0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                           0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f});
    case Bnb4Type::fp4: {
      // 1 sign, 2 exponent, 1 mantissa bit; bit patterns 0..7 are these magnitudes over 12.
      const float magnitudes[8] = {0, 0.0625f, 8, 12, 4, 6, 2, 3};
      std::vector<float> code;
      for (float sign : {1.0f, -1.0f})
        for (float m : magnitudes) code.push_back(sign * m / 12.0f);
      return float_tensor(code);
    }
  }
  fail("unknown bnb 4-bit type");
}

at::Tensor bnb_dynamic_map() {
  // Signed, 7 exponent bits: exponent i holds 2^i values, the means of 2^i + 1 points spread
  // evenly over [0.1, 1], scaled by 10^(i - 6); both signs, then 0 and 1.
  const float decades[7] = {1e-6f, 1e-5f, 1e-4f, 1e-3f, 1e-2f, 1e-1f, 1.0f};
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const std::vector<float> bounds = torch_linspace(0.1f, 1.0f, (1 << i) + 1);
    for (size_t k = 0; k + 1 < bounds.size(); ++k) {
      const float value = decades[i] * ((bounds[k] + bounds[k + 1]) / 2.0f);
      data.push_back(value);
      data.push_back(-value);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  return float_tensor(data);
}

at::Tensor bnb4_block_absmax(const Bnb4Weight& w) {
  if (!w.double_quant) return w.absmax.cpu().to(at::kFloat);
  const int64_t blocks = w.qabsmax.numel();
  const at::Tensor block2 = at::arange(blocks, at::kLong).div(kBnbNestedBlocksize, "floor");
  // Two float32 operations, as bitsandbytes dequantizes the nested state and then adds offset.
  const at::Tensor nested = w.code2.cpu().index_select(0, w.qabsmax.cpu().to(at::kLong)) *
                            w.absmax2.cpu().index_select(0, block2);
  if (w.offsets.defined()) return nested + w.offsets.cpu().index_select(0, block2);
  return nested + w.offset;
}

at::Tensor bnb4_unpack(const Bnb4Weight& w) {
  const at::Tensor packed = w.packed.cpu().reshape(-1).to(at::kLong);
  const at::Tensor high = packed.div(16, "floor");  // the first element of each byte
  const at::Tensor low = packed.remainder(16);
  return at::stack({high, low}, 1).reshape(-1).slice(0, 0, w.out * w.in).to(at::kByte);
}

at::Tensor bnb4_dequantize(const Bnb4Weight& w) {
  const int64_t n = w.out * w.in;
  const at::Tensor q = bnb4_unpack(w).to(at::kLong);
  const at::Tensor block = at::arange(n, at::kLong).div(w.blocksize, "floor");
  const at::Tensor values = w.code.cpu().index_select(0, q) *
                            bnb4_block_absmax(w).index_select(0, block);
  return values.view({w.out, w.in});
}

}  // namespace qsweep
