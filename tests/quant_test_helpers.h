#pragma once
// Inputs, configs and comparisons shared by the storage-format tests.
#include "qsweep/quant/quant_config.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

// The 64-bit LCG of tests/parity/bnb_reference.py: k / 2^shift with k in [-255, 255] and shift
// in [6, 11], values exact in float16, bfloat16 and float32.
inline at::Tensor lcg_values(uint64_t seed, int64_t n) {
  std::vector<float> v;
  uint64_t state = seed;
  for (int64_t i = 0; i < n; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t k = static_cast<int64_t>((state >> 33) % 511) - 255;
    const int shift = 6 + static_cast<int>((state >> 50) % 6);
    v.push_back(static_cast<float>(k) / static_cast<float>(1 << shift));
  }
  return at::tensor(at::ArrayRef<float>(v), at::kFloat);
}

inline std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

// The raw bytes of a contiguous CPU tensor, for bit-for-bit comparisons.
inline std::vector<uint8_t> bytes_of(const at::Tensor& t) {
  const at::Tensor c = t.cpu().contiguous();
  std::vector<uint8_t> out(c.numel() * c.element_size());
  if (!out.empty()) std::memcpy(out.data(), c.data_ptr(), out.size());
  return out;
}

inline at::Tensor seeded_normal(uint64_t seed, std::vector<int64_t> shape) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::normal(0.0, 1.0, shape, gen);
}

// A config of `method` with these bits, group size and double quantization, the rest default.
inline qsweep::QuantConfig config_of(qsweep::QuantMethod method, int bits, int group,
                                     bool double_quant) {
  qsweep::QuantConfig c;
  c.method = method;
  c.bits = bits;
  c.group_size = group;
  c.double_quant = double_quant;
  return c;
}
