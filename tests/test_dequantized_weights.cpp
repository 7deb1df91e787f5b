// DequantizedWeights: inside the scope each quantized weight is dequantized once and reused;
// the products do not change, a stacked projection and the part view that starts at the same
// address are kept apart, and nothing outlives the scope.
#include "qsweep/model/dequantized_weights.h"
#include "qsweep/model/linear.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/quant/quantize_model.h"
#include "qsweep/util/error.h"

#include "quant_test_helpers.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <vector>

namespace qsweep {
namespace {

Linear quantized(const QuantConfig& c, int64_t out, uint64_t seed) {
  return quantize_linear(seeded_normal(seed, {out, 256}) * 0.05, c, at::kFloat);
}

TEST(DequantizedWeights, EachWeightIsMadeOnceAndTheProductsDoNotChange) {
  const at::Tensor x = seeded_normal(7, {3, 256});
  for (const QuantConfig& c : {config_of(QuantMethod::rtn, 4, 128, false),
                               config_of(QuantMethod::bnb_nf4, 4, 0, true)}) {
    const Linear a = quantized(c, 64, 1), b = quantized(c, 32, 2);
    const at::Tensor ya = linear_forward(a, x), yb = linear_forward(b, x);
    const DequantizedWeights scope;
    EXPECT_TRUE(at::equal(linear_forward(a, x), ya));
    EXPECT_TRUE(at::equal(linear_forward(a, x), ya));
    EXPECT_EQ(scope.size(), 1u);
    EXPECT_TRUE(at::equal(linear_forward(b, x), yb));
    EXPECT_EQ(scope.size(), 2u);
  }
}

TEST(DequantizedWeights, AStackedProjectionAndItsFirstPartAreKeptApart) {
  const at::Tensor x = seeded_normal(8, {2, 256});
  std::vector<Linear> parts;
  for (int64_t out : {128, 64}) parts.push_back(quantized(config_of(QuantMethod::rtn, 4, 128, false), out, out));
  const at::Tensor first = linear_forward(parts[0], x);
  std::string why;
  const std::optional<Linear> stacked = stack_linears({&parts[0], &parts[1]}, why);
  ASSERT_TRUE(stacked) << why;
  const at::Tensor both = linear_forward(*stacked, x);
  const DequantizedWeights scope;
  EXPECT_TRUE(at::equal(linear_forward(*stacked, x), both));
  EXPECT_TRUE(at::equal(linear_forward(parts[0], x), first));  // same address, fewer rows
  EXPECT_EQ(scope.size(), 2u);
}

TEST(DequantizedWeights, DenseAndInt8WeightsAreNotCopiedAndScopesDoNotNest) {
  const at::Tensor x = seeded_normal(9, {2, 256});
  const Linear dense{DenseWeight{seeded_normal(3, {16, 256})}};
  const Linear int8 = quantized(config_of(QuantMethod::llm_int8, 8, 0, false), 16, 4);
  {
    const DequantizedWeights scope;
    linear_forward(dense, x);
    linear_forward(int8, x);
    EXPECT_EQ(scope.size(), 0u);
    EXPECT_THROW(DequantizedWeights(), Error);
  }
  const DequantizedWeights next;  // the first one closed
  EXPECT_EQ(next.size(), 0u);
}

}  // namespace
}  // namespace qsweep
