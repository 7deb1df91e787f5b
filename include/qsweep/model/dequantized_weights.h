#pragma once
// Dense copies of quantized weights, kept for a scope instead of remade for every product.
#include <cstddef>
#include <memory>

namespace qsweep {

// While one of these is alive on a thread, a product there that dequantizes a whole quantized
// weight (every product on the CPU; on a GPU those past the fused kernels' rows: prefill and
// large decode batches) dequantizes each weight once and reuses it until the scope ends. The
// values and the product are the same; what is saved is redoing the dequantization on every
// decode step, at the cost of the dense copies' memory (generate() opens one when they fit).
// Scopes do not nest. Inside a CUDA graph capture nothing is added, only looked up.
class DequantizedWeights {
 public:
  DequantizedWeights();
  ~DequantizedWeights();
  DequantizedWeights(const DequantizedWeights&) = delete;
  DequantizedWeights& operator=(const DequantizedWeights&) = delete;
  size_t size() const;  // weights held

  struct Weights;  // defined where the products look them up (linear.cpp)

 private:
  std::unique_ptr<Weights> weights_;
};

}  // namespace qsweep
