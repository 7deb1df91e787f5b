// q|k|v and gate|up stacked into one projection: the stacked product must equal the separate
// products side by side in every storage format, the separate projections must keep working as
// views, and a model must compute the same logits stacked or not.
#include "qsweep/model/engine.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/quant/quantize_model.h"

#include "quant_test_helpers.h"
#include "test_helpers.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace qsweep {
namespace {

// Reference paths compute in float32 with the same dequantized rows, so stacked and separate
// products differ only by the matrix multiply's blocking.
constexpr double kProductTolerance = 1e-5;

struct FormatCase {
  std::string name;
  QuantConfig config;
};

std::vector<FormatCase> format_cases() {
  return {{"dense", config_of(QuantMethod::none, 16, 0, false)},
          {"rtn4_g128", config_of(QuantMethod::rtn, 4, 128, false)},
          {"rtn3_g32", config_of(QuantMethod::rtn, 3, 32, false)},
          {"rtn8_per_row", config_of(QuantMethod::rtn, 8, -1, false)},
          {"nf4_double_quant", config_of(QuantMethod::bnb_nf4, 4, 0, true)},
          {"fp4", config_of(QuantMethod::bnb_fp4, 4, 0, false)},
          {"llm_int8", config_of(QuantMethod::llm_int8, 8, 0, false)}};
}

// q, k, v of a layer with 256 inputs: 256, 64 and 64 outputs, so every part holds whole
// nested absmax blocks (64 x 256 / 64 = 256 blocks) and whole packed words.
std::vector<Linear> qkv_parts(const QuantConfig& c, uint64_t seed) {
  std::vector<Linear> parts;
  for (const int64_t out : {256, 64, 64})
    parts.push_back(quantize_linear(seeded_normal(seed++, {out, 256}) * 0.05, c, at::kFloat));
  return parts;
}

// Inputs with two outlier columns, so LLM.int8 takes both of its paths.
at::Tensor inputs() {
  at::Tensor x = seeded_normal(99, {5, 256});
  x.select(1, 3).mul_(20);
  x.select(1, 200).mul_(20);
  return x;
}

std::vector<Linear*> pointers(std::vector<Linear>& parts) {
  std::vector<Linear*> out;
  for (Linear& p : parts) out.push_back(&p);
  return out;
}

TEST(StackedProjections, StackedProductEqualsThePartsSideBySideInEveryFormat) {
  const at::Tensor x = inputs();
  for (const FormatCase& f : format_cases()) {
    SCOPED_TRACE(f.name);
    std::vector<Linear> parts = qkv_parts(f.config, 1);
    std::vector<at::Tensor> before;
    std::vector<int64_t> bytes;
    for (const Linear& p : parts) {
      before.push_back(linear_forward(p, x));
      bytes.push_back(linear_bytes(p));
    }
    std::string why;
    const std::optional<Linear> stacked = stack_linears(pointers(parts), why);
    ASSERT_TRUE(stacked) << why;
    EXPECT_EQ(linear_out_features(*stacked), 384);
    EXPECT_TRUE(at::allclose(linear_forward(*stacked, x), at::cat(before, 1), 0, kProductTolerance));
    EXPECT_TRUE(at::allclose(linear_dequantize(*stacked),
                             at::cat({linear_dequantize(parts[0]), linear_dequantize(parts[1]),
                                      linear_dequantize(parts[2])}, 0), 0, 0));
    for (size_t i = 0; i < parts.size(); ++i) {
      // The part is now a view: the same product, the same bytes, no storage of its own.
      EXPECT_TRUE(at::equal(linear_forward(parts[i], x), before[i])) << "part " << i;
      EXPECT_EQ(linear_bytes(parts[i]), bytes[i]) << "part " << i;
    }
  }
}

// linear_forward with GemvOutput::silu_gate_up of a stacked gate|up is silu(gate(x)) * up(x) in every format.
TEST(StackedProjections, SiluGateUpOfTheStackIsSiluOfGateTimesUpInEveryFormat) {
  const at::Tensor x = inputs();
  for (const FormatCase& f : format_cases()) {
    SCOPED_TRACE(f.name);
    std::vector<Linear> parts;
    for (uint64_t seed : {11, 12})
      parts.push_back(quantize_linear(seeded_normal(seed, {64, 256}) * 0.05, f.config, at::kFloat));
    const at::Tensor want = at::silu(linear_forward(parts[0], x)) * linear_forward(parts[1], x);
    std::string why;
    const std::optional<Linear> gate_up = stack_linears(pointers(parts), why);
    ASSERT_TRUE(gate_up) << why;
    const at::Tensor got = linear_forward(*gate_up, x, GemvOutput::silu_gate_up);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(at::allclose(got, want, 0, kProductTolerance));
  }
}

TEST(StackedProjections, PartsThatDifferStaySeparateAndUntouched) {
  std::vector<Linear> parts = qkv_parts(config_of(QuantMethod::rtn, 4, 128, false), 1);
  parts[2] = qkv_parts(config_of(QuantMethod::rtn, 3, 128, false), 3)[2];
  const at::Tensor before = std::get<IntGroupWeight>(parts[0].weight).qweight;
  std::string why;
  EXPECT_FALSE(stack_linears(pointers(parts), why));
  EXPECT_EQ(why, "their bits differ");
  EXPECT_TRUE(std::get<IntGroupWeight>(parts[0].weight).qweight.is_same(before));

  parts = qkv_parts(config_of(QuantMethod::rtn, 4, 128, false), 1);
  parts[1] = qkv_parts(config_of(QuantMethod::bnb_nf4, 4, 0, false), 1)[1];
  EXPECT_FALSE(stack_linears(pointers(parts), why));
  EXPECT_EQ(why, "their storage formats differ");

  // 32 x 256 / 64 = 128 absmax blocks: half a nested block of 256.
  std::vector<Linear> small;
  for (const int64_t out : {256, 32})
    small.push_back(quantize_linear(seeded_normal(out, {out, 256}),
                                    config_of(QuantMethod::bnb_nf4, 4, 0, true), at::kFloat));
  EXPECT_FALSE(stack_linears(pointers(small), why));
  EXPECT_EQ(why, "a part ends inside a nested block");
}

// The "small" preset: 256 hidden, 768 intermediate, 8 heads, 2 kv heads of 32.
const std::string& small_model_dir() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("stacked-model");
    ModelConfig c = model_preset("small", 300);
    write_random_model(c, RandomInit{5, 0.2, at::kFloat}, d);
    return d;
  }();
  return dir;
}

TEST(StackedProjections, AModelComputesTheSameLogitsStacked) {
  const std::vector<int32_t> ids = {1, 17, 42, 99, 7, 250, 3, 64};
  for (const FormatCase& f : format_cases()) {
    SCOPED_TRACE(f.name);
    Model m = load_model(small_model_dir(), {DType::fp32, at::kCPU});
    quantize_model(m, f.config, {});
    const at::Tensor separate = forward_sequence(m, ids, false);
    stack_projections(m);
    for (const LayerWeights& l : m.layers) {
      EXPECT_TRUE(l.qkv.has_value());
      EXPECT_TRUE(l.gate_up.has_value());
    }
    EXPECT_TRUE(at::allclose(forward_sequence(m, ids, false), separate, 0, 1e-4));
  }
}

}  // namespace
}  // namespace qsweep
