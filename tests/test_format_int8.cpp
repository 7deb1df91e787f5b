// LLM.int8(): row-wise weight codes, the mixed int8 / compute-dtype product and the outlier
// dimensions make-model plants.
#include "qsweep/model/format_int8.h"
#include "qsweep/model/linear.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/safetensors.h"
#include "qsweep/quant/int8_rows.h"
#include "quant_test_helpers.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using namespace qsweep;

namespace {

// Relative error (Frobenius) against the float32 product that LLM.int8 with its outlier path
// stays under on inputs with planted outlier columns; without the path it does far worse.
constexpr double kInt8MixedRelativeError = 0.02;
// How much smaller the error must be with the outlier path than with int8 alone.
constexpr double kInt8OutlierGain = 3.0;

double relative_error(const at::Tensor& y, const at::Tensor& ref) {
  return ((y.to(at::kFloat) - ref).norm() / ref.norm()).item<double>();
}

// Normal activations whose `cols` columns are `scale` times larger, as after a layer norm
// with outlier dimensions.
at::Tensor activations_with_outliers(uint64_t seed, int64_t rows, int64_t in,
                                     const std::vector<int64_t>& cols, double scale) {
  at::Tensor x = seeded_normal(seed, {rows, in});
  const at::Tensor index = at::tensor(at::ArrayRef<int64_t>(cols), at::kLong);
  x.index_copy_(1, index, x.index_select(1, index) * scale);
  return x;
}

ModelConfig tiny_config() {
  ModelConfig c = model_preset("tiny", 300);
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

}  // namespace

TEST(Int8Rows, WeightCodesAreRowsRoundedAgainstTheirAbsmax) {
  const at::Tensor w = at::tensor({1.0f, -2.0f, 0.5f, 0.0f, 0.0f, 0.0f}).view({2, 3});
  const Int8RowWeight q = quantize_int8_rows(w, 6.0, at::kHalf);
  // 1 * 127 / 2 = 63.5 rounds to even (64); 0.5 * 63.5 = 31.75 to 32; a zero row stays zero.
  EXPECT_TRUE(q.weight.equal(at::tensor({64, -127, 32, 0, 0, 0}, at::kChar).view({2, 3})));
  EXPECT_TRUE(q.row_absmax.equal(at::tensor({2.0f, 0.0f})));
  EXPECT_EQ(q.threshold, 6.0);
  EXPECT_EQ(linear_bytes(Linear{q}), 6 + 2 * 4);
  EXPECT_TRUE(at::allclose(int8_rows_dequantize(q), at::tensor({64.0f / 63.5f, -2.0f, 32.0f / 63.5f,
                                                                0.0f, 0.0f, 0.0f}).view({2, 3})));
}

TEST(Int8Rows, OutlierElementsLeaveTheAbsmaxAndTheirColumnsTheInt8Product) {
  const at::Tensor x = at::tensor({1.0f, 8.0f, -0.5f, 2.0f, 3.0f, -4.0f}).view({2, 3});
  const Int8Rows r = int8_quantize_rows(x, 6.0);
  EXPECT_TRUE(r.outlier_cols.equal(at::tensor({int64_t(1)})));
  // Row 0 without its outlier 8: absmax 1. Row 1 keeps 3 (below the threshold) in its absmax.
  EXPECT_TRUE(r.absmax.equal(at::tensor({1.0f, 4.0f})));
  EXPECT_TRUE(r.codes.equal(at::tensor({127, 0, -64, 64, 0, -127}, at::kChar).view({2, 3})));
  EXPECT_EQ(int8_quantize_rows(x, 0.0).outlier_cols.numel(), 0);
}

TEST(Int8Linear, OutlierPathBeatsPlainInt8OnPlantedColumns) {
  const std::vector<int64_t> cols = {3, 70, 71, 200};
  const at::Tensor x = activations_with_outliers(1, 24, 256, cols, 25.0).to(at::kHalf);
  const at::Tensor w = seeded_normal(2, {128, 256}) * 0.05;
  const at::Tensor ref = at::matmul(x.to(at::kFloat), w.to(at::kHalf).to(at::kFloat).t());
  const Linear mixed{quantize_int8_rows(w, 6.0, at::kHalf)};
  const Linear plain{quantize_int8_rows(w, 0.0, at::kHalf)};
  const at::Tensor y_mixed = linear_forward(mixed, x), y_plain = linear_forward(plain, x);
  EXPECT_EQ(y_mixed.scalar_type(), at::kHalf);
  const double err_mixed = relative_error(y_mixed, ref), err_plain = relative_error(y_plain, ref);
  EXPECT_LT(err_mixed, kInt8MixedRelativeError);
  EXPECT_LT(err_mixed * kInt8OutlierGain, err_plain) << err_mixed << " vs " << err_plain;
}

TEST(Int8Linear, WithoutOutliersBothPathsAgree) {
  const at::Tensor x = seeded_normal(3, {2, 5, 64}).to(at::kHalf);
  const at::Tensor w = seeded_normal(4, {32, 64});
  const at::Tensor y6 = linear_forward(Linear{quantize_int8_rows(w, 6.0, at::kHalf)}, x);
  const at::Tensor y0 = linear_forward(Linear{quantize_int8_rows(w, 0.0, at::kHalf)}, x);
  EXPECT_EQ(y6.sizes(), (std::vector<int64_t>{2, 5, 32}));
  EXPECT_TRUE(y6.equal(y0));   // no |x| >= 6 in N(0, 1) draws of this seed
}

TEST(MakeModelOutliers, PlantsTheSameSeededDimensionsInEveryLayerNorm) {
  RandomInit init{7, 0.2, at::kFloat};
  init.outliers = 3;
  const std::vector<int64_t> dims = outlier_dims(init, 64);
  ASSERT_EQ(dims.size(), 3u);
  EXPECT_EQ(outlier_dims(init, 64), dims);
  const std::string with = make_temp_dir("outliers"), without = make_temp_dir("no-outliers");
  write_random_model(tiny_config(), init, with);
  write_random_model(tiny_config(), RandomInit{7, 0.2, at::kFloat}, without);
  const WeightFiles a = WeightFiles::open_model_dir(with), b = WeightFiles::open_model_dir(without);
  for (const char* name : {"model.layers.0.input_layernorm.weight",
                           "model.layers.1.post_attention_layernorm.weight"}) {
    const at::Tensor norm = a.view(name);
    EXPECT_EQ(norm.ne(1).sum().item<int64_t>(), 3) << name;
    for (int64_t d : dims) EXPECT_EQ(norm[d].item<float>(), 20.0f) << name;
  }
  EXPECT_TRUE(a.view("model.layers.1.mlp.up_proj.weight").equal(b.view("model.layers.1.mlp.up_proj.weight")));
  EXPECT_TRUE(b.view("model.layers.0.input_layernorm.weight").eq(1).all().item<bool>());
}

TEST(MakeModelOutliers, Int8OutlierPathActsOnTheMadeModelsNormedInputs) {
  RandomInit init{11, 0.02, at::kFloat};
  init.outliers = 2;
  const std::string dir = make_temp_dir("outlier-model");
  write_random_model(tiny_config(), init, dir);
  const WeightFiles files = WeightFiles::open_model_dir(dir);
  // RMS-normalised hidden states times the layer norm, as q_proj sees them.
  const at::Tensor h = seeded_normal(12, {16, 64});
  const at::Tensor normed = h * at::rsqrt(h.pow(2).mean(-1, true) + 1e-5) *
                            files.view("model.layers.0.input_layernorm.weight");
  const at::Tensor x = normed.to(at::kHalf);
  const at::Tensor w = files.view("model.layers.0.self_attn.q_proj.weight");
  const Int8Rows rows = int8_quantize_rows(x, 6.0);
  const std::vector<int64_t> dims = outlier_dims(init, 64);
  EXPECT_TRUE(rows.outlier_cols.equal(at::tensor(at::ArrayRef<int64_t>(dims), at::kLong)));
  const at::Tensor ref = at::matmul(x.to(at::kFloat), w.to(at::kHalf).to(at::kFloat).t());
  const double err_mixed = relative_error(linear_forward(Linear{quantize_int8_rows(w, 6.0, at::kHalf)}, x), ref);
  const double err_plain = relative_error(linear_forward(Linear{quantize_int8_rows(w, 0.0, at::kHalf)}, x), ref);
  EXPECT_LT(err_mixed, err_plain) << err_mixed << " vs " << err_plain;
}
