// GPTQ against a dense float64 reference of the same algorithm, against RTN on the output it
// is meant to preserve, act-order and static groups, dead inputs, dampening, the Hessian.
#include "qsweep/model/format_int_group.h"
#include "qsweep/quant/gptq.h"
#include "qsweep/quant/gptq_quantizer.h"
#include "qsweep/quant/rtn.h"
#include "quant_test_helpers.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

using namespace qsweep;

namespace {

// A symmetric grid puts a group's largest magnitude exactly half a step past the last code
// (-7.5 steps at 4 bits). A group's first column is quantized as it stood when the scale was
// found, so where it holds a row's negative extreme, float32 and float64 break that tie either
// way (code 0 or 1), and the flipped code shifts the later columns of its row, dragging a few
// more codes with it. Measured: at most 1.2% of the codes, in up to 6 of 64 rows, only
// symmetric.
constexpr double kCodeMismatchFraction = 0.02;
// Relative Frobenius distance of the dequantized weights, all rows: a flipped code is off by
// a step, a large part of a 3-bit weight (measured up to 4.5%).
constexpr double kDequantizedTolerance = 0.08;
// In a row whose codes all agree, in steps (scales) of the group: float32 against float64 on
// weights updated 256 times, with input channels 20 times the rest (measured 4e-5).
constexpr double kAgreeingRowSteps = 2e-4;
// GPTQ's loss against the reference's, relative: the flipped codes move it (measured 0.2%).
constexpr double kLossTolerance = 0.01;
// GPTQ must beat RTN's output error by at least this factor on correlated inputs with outliers
// (measured about 0.02 here); far looser than measured, so seeds do not matter.
constexpr double kGptqOverRtnMax = 0.5;
// The running mean and one product over both batches sum 96 float32 products in different
// orders; relative, and absolute against the largest entry.
constexpr double kHessianTolerance = 1e-5;

constexpr int64_t kOut = 64, kIn = 256, kRows = 512;
// Llama's activations have a few input channels many times larger than the rest.
constexpr double kOutlierScale = 20;
const std::vector<int64_t> kOutlierChannels = {5, 77, 130, 201};

// Correlated inputs, as a layer's are: shared factors plus noise, with outlier channels.
at::Tensor calibration_inputs(uint64_t seed, int64_t rows = kRows, int64_t in = kIn) {
  at::Tensor x = seeded_normal(seed, {rows, in}) * 0.5 +
                 at::matmul(seeded_normal(seed + 1, {rows, 16}), seeded_normal(seed + 2, {16, in}));
  for (int64_t c : kOutlierChannels)
    if (c < in) x.select(1, c).mul_(kOutlierScale);
  return x;
}

Hessian hessian_of(const at::Tensor& x) {
  Hessian h;
  add_to_hessian(h, x);
  return h;
}

GptqOptions options(int bits, int group, bool desc_act, bool sym = true) {
  GptqOptions o;
  o.bits = bits;
  o.group_size = group;
  o.desc_act = desc_act;
  o.sym = sym;
  return o;
}

at::Tensor codes_of(const IntGroupWeight& q) { return unpack_int_codes(q.qweight, q.bits, 0).t(); }

// The scale of each weight [out, in], float64.
at::Tensor element_scales(const IntGroupWeight& q) {
  return q.scales.to(at::kDouble).index_select(0, q.g_idx.to(at::kLong)).t();
}

// ||X W^T - X Q^T||^2 in float64.
double output_error(const at::Tensor& x, const at::Tensor& w, const at::Tensor& q) {
  const at::Tensor d = at::matmul(x.to(at::kDouble), (w - q).to(at::kDouble).t());
  return d.square().sum().item<double>();
}

double relative_distance(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want.to(at::kDouble)).norm() / want.to(at::kDouble).norm())
      .item<double>();
}

struct Reference {
  at::Tensor codes;   // int32 [out, in]
  at::Tensor deq;     // float64 [out, in]
  double loss = 0;
};

// GPTQ without lazy blocks in float64: after each column every later column takes its error,
// and a group's scale comes from its columns as they stand when its first column is reached.
// The grid is the shared float32 quantizer's (tested against GPTQ's in test_quant), as in
// gptq_quantize: this checks the algorithm around it.
Reference dense_reference(const at::Tensor& w0, const at::Tensor& h0, const GptqOptions& o) {
  at::Tensor w = w0.to(at::kDouble), h = h0.to(at::kDouble);
  const int64_t out = w.size(0), in = w.size(1), group = o.group_size == -1 ? in : o.group_size;
  const at::Tensor dead = h.diagonal() == 0;
  h.diagonal().masked_fill_(dead, 1);
  w.masked_fill_(dead.unsqueeze(0), 0);
  const at::Tensor perm = o.desc_act ? at::argsort(h.diagonal(), true, 0, true)
                                     : at::arange(in, at::kLong);
  w = w.index_select(1, perm);
  h = h.index_select(0, perm).index_select(1, perm);
  h.diagonal().add_(o.damp_percent * h.diagonal().mean().item<double>());
  const at::Tensor hinv =
      at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(h)), /*upper=*/true);

  Reference r;
  r.codes = at::zeros({out, in}, at::kInt);
  r.deq = at::zeros({out, in}, at::kDouble);
  at::Tensor scale, zero;
  const double maxq = (1 << o.bits) - 1;
  for (int64_t j = 0; j < in; ++j) {
    if (j % group == 0) {
      const GroupScale s = gptq_find_params(w.slice(1, j, j + group), o.bits, o.sym);
      scale = s.scale.to(at::kDouble), zero = s.zero.to(at::kDouble);
    }
    const at::Tensor col = w.select(1, j);
    const at::Tensor code = at::clamp(at::round(col / scale) + zero, 0, maxq);
    const at::Tensor deq = scale * (code - zero);
    const at::Tensor err = (col - deq) / hinv[j][j];
    r.loss += err.square().sum().item<double>() / 2;
    w.slice(1, j) -= at::outer(err, hinv[j].slice(0, j));
    r.codes.select(1, j).copy_(code);
    r.deq.select(1, j).copy_(deq);
  }
  const at::Tensor inverse = at::argsort(perm);
  r.codes = r.codes.index_select(1, inverse);
  r.deq = r.deq.index_select(1, inverse);
  return r;
}

// Rows are independent in GPTQ (each row's quantizer sees only that row), so a row whose
// codes all agree with the reference must agree in value too.
void expect_matches_reference(const at::Tensor& w, const Hessian& h, const GptqOptions& o) {
  const GptqResult got = gptq_quantize(w, h, o, at::kFloat, "layer");
  const Reference want = dense_reference(w, h.h, o);
  const at::Tensor differs = codes_of(got.weight).ne(want.codes);
  EXPECT_LE(differs.to(at::kDouble).mean().item<double>(), kCodeMismatchFraction);
  const at::Tensor deq = int_group_dequantize(got.weight);
  EXPECT_LE(relative_distance(deq, want.deq), kDequantizedTolerance);
  const at::Tensor agreeing = differs.any(1).logical_not();
  const at::Tensor steps = (deq.to(at::kDouble) - want.deq).abs() / element_scales(got.weight);
  EXPECT_LE(steps.index({agreeing}).max().item<double>(), kAgreeingRowSteps);
  EXPECT_NEAR(got.loss, want.loss, kLossTolerance * want.loss);
}

}  // namespace

TEST(Gptq, BlockedUpdatesMatchADenseFloat64Reference) {
  const at::Tensor w = seeded_normal(11, {kOut, kIn});
  const Hessian h = hessian_of(calibration_inputs(12));
  for (int bits : {4, 3})
    for (int group : {128, 32, -1})
      for (bool desc_act : {false, true})
        for (bool sym : {true, false}) {
          SCOPED_TRACE(testing::Message() << bits << " bits, group " << group << ", desc_act "
                                          << desc_act << ", sym " << sym);
          expect_matches_reference(w, h, options(bits, group, desc_act, sym));
        }
}

TEST(Gptq, GroupsStraddlingABlockSeeTheUpdatesStillPending) {
  // Blocks of 48 end inside groups of 32: the rest of such a group lies past the block.
  const at::Tensor w = seeded_normal(13, {kOut, kIn});
  const Hessian h = hessian_of(calibration_inputs(14));
  for (bool desc_act : {false, true}) {
    GptqOptions o = options(4, 32, desc_act);
    o.block_size = 48;
    expect_matches_reference(w, h, o);
  }
}

TEST(Gptq, OutputErrorClearlyBelowRtn) {
  const at::Tensor w = seeded_normal(21, {kOut, kIn});
  const at::Tensor x = calibration_inputs(22);
  const Hessian h = hessian_of(x);
  for (int bits : {3, 4})
    for (int group : {128, -1}) {
      SCOPED_TRACE(testing::Message() << bits << " bits, group " << group);
      const IntGroupWeight gptq = gptq_quantize(w, h, options(bits, group, false), at::kFloat,
                                                "layer").weight;
      const IntGroupWeight rtn = quantize_rtn(w, bits, group, true, at::kFloat);
      const double e_gptq = output_error(x, w, int_group_dequantize(gptq));
      const double e_rtn = output_error(x, w, int_group_dequantize(rtn));
      EXPECT_LT(e_gptq, kGptqOverRtnMax * e_rtn);
    }
}

TEST(Gptq, ActOrderPermutesGroupsWithoutRaisingTheError) {
  const at::Tensor w = seeded_normal(31, {kOut, kIn});
  const at::Tensor x = calibration_inputs(32);
  const Hessian h = hessian_of(x);
  const at::Tensor in_order = at::arange(kIn, at::kInt).div(32, "floor").to(at::kInt);
  for (int bits : {3, 4}) {
    SCOPED_TRACE(bits);
    const IntGroupWeight plain =
        gptq_quantize(w, h, options(bits, 32, false), at::kFloat, "l").weight;
    const IntGroupWeight act = gptq_quantize(w, h, options(bits, 32, true), at::kFloat, "l").weight;
    EXPECT_TRUE(plain.g_idx.equal(in_order));
    EXPECT_FALSE(act.g_idx.equal(in_order));
    EXPECT_TRUE(plain.sequential_groups);
    EXPECT_FALSE(act.sequential_groups);  // the GPU kernels must read g_idx
    // The largest inputs come first, so they all fall in group 0.
    for (int64_t c : kOutlierChannels) EXPECT_EQ(act.g_idx[c].item<int>(), 0) << c;
    // Every group still holds group_size columns.
    EXPECT_TRUE(at::bincount(act.g_idx.to(at::kLong)).eq(32).all().item<bool>());
    const double e_plain = output_error(x, w, int_group_dequantize(plain));
    const double e_act = output_error(x, w, int_group_dequantize(act));
    EXPECT_LE(e_act, e_plain);
  }
}

TEST(Gptq, StaticGroupsKeepInputOrderGroupsAndTheOriginalScales) {
  const at::Tensor w = seeded_normal(41, {kOut, kIn});
  const Hessian h = hessian_of(calibration_inputs(42));
  GptqOptions o = options(4, 64, true);
  o.static_groups = true;
  const IntGroupWeight q = gptq_quantize(w, h, o, at::kFloat, "layer").weight;
  EXPECT_TRUE(q.g_idx.equal(at::arange(kIn, at::kInt).div(64, "floor").to(at::kInt)));
  EXPECT_TRUE(q.sequential_groups);
  // Fixed before any update: the scales RTN finds on the same weights.
  const IntGroupWeight rtn = quantize_rtn(w, 4, 64, true, at::kFloat);
  EXPECT_TRUE(q.scales.equal(rtn.scales));
}

TEST(Gptq, DeadInputChannelGivesAZeroWeightColumn) {
  const int64_t dead = 100;
  at::Tensor x = calibration_inputs(51);
  x.select(1, dead).zero_();
  const at::Tensor w = seeded_normal(52, {kOut, kIn});
  for (bool desc_act : {false, true})
    for (bool sym : {true, false}) {
      SCOPED_TRACE(testing::Message() << "desc_act " << desc_act << ", sym " << sym);
      const IntGroupWeight q =
          gptq_quantize(w, hessian_of(x), options(4, 128, desc_act, sym), at::kFloat, "l").weight;
      const at::Tensor zero_point =
          int_group_zero_points(q).index_select(0, q.g_idx.to(at::kLong)).t();   // [out, in]
      EXPECT_TRUE(codes_of(q).select(1, dead).equal(zero_point.select(1, dead)));
      EXPECT_TRUE(int_group_dequantize(q).select(1, dead).eq(0).all().item<bool>());
    }
}

TEST(Gptq, SingularHessianRetriesWithMoreDampening) {
  // 16 rows of 256 inputs: H has rank 16, and without dampening Cholesky fails.
  const Hessian h = hessian_of(calibration_inputs(61, 16));
  GptqOptions o = options(4, 128, false);
  o.damp_percent = 0;
  const GptqResult r = gptq_quantize(seeded_normal(62, {kOut, kIn}), h, o, at::kFloat, "layer");
  EXPECT_GE(r.damp_retries, 1);
  EXPECT_GT(r.damp, 0);
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_TRUE(int_group_dequantize(r.weight).isfinite().all().item<bool>());
}

TEST(Gptq, FailsNamingTheLayerWhereNoDampeningHelps) {
  // Not a Hessian at all: an eigenvalue of -5000 against a mean diagonal of 1.
  Hessian h{at::eye(32), 1};
  h.h[0][1] = 5000;
  h.h[1][0] = 5000;
  const std::string e = error_of([&] {
    gptq_quantize(seeded_normal(71, {32, 32}), h, options(4, -1, false), at::kFloat, "layers.3.q");
  });
  EXPECT_NE(e.find("GPTQ layers.3.q"), std::string::npos) << e;
  EXPECT_NE(e.find("raise damp_percent"), std::string::npos) << e;
}

TEST(GptqHessian, TwoBatchesMatchOneBatchOfBoth) {
  const at::Tensor first = calibration_inputs(81, 32, 64).view({2, 16, 64});   // 2 sequences
  const at::Tensor second = calibration_inputs(82, 64, 64).to(at::kHalf);
  Hessian two;
  add_to_hessian(two, first);
  add_to_hessian(two, second);
  const at::Tensor both = at::cat({first.reshape({32, 64}), second.to(at::kFloat)});
  Hessian one;
  add_to_hessian(one, both);
  EXPECT_EQ(two.rows, 96);
  EXPECT_EQ(one.rows, 96);
  EXPECT_EQ(two.h.scalar_type(), at::kFloat);
  const double atol = kHessianTolerance * one.h.abs().max().item<double>();
  EXPECT_TRUE(at::allclose(two.h, one.h, kHessianTolerance, atol));
  // GPTQ's 2 / n * X^T X.
  const at::Tensor want = at::matmul(both.t(), both) * (2.0 / 96);
  EXPECT_TRUE(at::allclose(one.h, want, kHessianTolerance, atol));
}

TEST(GptqHessian, RejectsInputsOfAnotherWidth) {
  Hessian h = hessian_of(seeded_normal(83, {8, 64}));
  const std::string e = error_of([&] { add_to_hessian(h, seeded_normal(84, {8, 32})); });
  EXPECT_NE(e.find("inputs of 32 features for a Hessian of 64"), std::string::npos) << e;
}

TEST(Gptq, RejectsBadOptionsNamingThem) {
  const at::Tensor w = at::zeros({32, 64});
  const Hessian h = hessian_of(seeded_normal(91, {8, 64}));
  auto error_with = [&](const GptqOptions& o) {
    return error_of([&] { gptq_quantize(w, h, o, at::kHalf, "layers.0.up"); });
  };
  const std::string bits = error_with(options(5, 32, false));
  EXPECT_NE(bits.find("GPTQ layers.0.up: bits must be 2, 3, 4 or 8, got 5"), std::string::npos)
      << bits;
  const std::string split = error_with(options(4, 48, false));
  EXPECT_NE(split.find("group_size 48 does not divide the 64 input features"), std::string::npos)
      << split;
  GptqOptions damp = options(4, 32, false);
  damp.damp_percent = -1;
  const std::string d = error_with(damp);
  EXPECT_NE(d.find("damp_percent must be a finite number >= 0, got -1"), std::string::npos) << d;
  GptqOptions block = options(4, 32, false);
  block.block_size = 0;
  const std::string b = error_with(block);
  EXPECT_NE(b.find("block_size must be positive, got 0"), std::string::npos) << b;
  const std::string empty =
      error_of([&] { gptq_quantize(w, Hessian{}, options(4, 32, false), at::kHalf, "l"); });
  EXPECT_NE(empty.find("no calibration rows"), std::string::npos) << empty;
}
