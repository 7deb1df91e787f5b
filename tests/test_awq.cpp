// AWQ: its asymmetric group quantizer in the int-group storage, the scale search on one linear
// layer and on a gated pair sharing an input, the clip search, and the errors on bad input.
// Made data: normal inputs with a few planted outlier channels, normal weights.
#include "qsweep/model/format_int_group.h"
#include "qsweep/quant/awq.h"
#include "quant_test_helpers.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace qsweep;

namespace {

// A float16 scale is the float32 one rounded to 11 significant bits, off by up to 2^-11 of it,
// which the dequantization multiplies by |q - zero| <= maxq.
constexpr double kHalfScaleRounding = 1.0 / 2048;
// Both sides multiply a code difference by a float32 scale once: up to 2^-24 of the product
// each.
constexpr double kFloatProductRounding = 1.0 / (1 << 23);
// The same quantized weights give the same output; the error's float32 mean may still be
// summed in another order.
constexpr double kSameErrorRelative = 1e-5;
// Planted outlier channels carry most of a plain quantizer's output error; AWQ's scales must
// remove at least this fraction of it (0.61 observed at 3 bits, 0.62 at 4, 0.67 for the gated
// pair).
constexpr double kAwqMinGainOnOutliers = 0.5;
// At 3 bits, clipping the planted weight outliers must remove at least this fraction of the
// output error of the unclipped weights (0.23 observed). At 4 bits the rounding error that
// clipping saves is a quarter as large and the gain small (0.07 observed): it need only be some.
constexpr double kClipMinGainAt3Bits = 0.1;

// Input channels whose activations are kOutlierGain times the others', as the few channels of
// a Llama layer's RMSNorm output that dwarf the rest.
const std::vector<int64_t> kOutlierChannels = {5, 70, 131, 200};
constexpr double kOutlierGain = 20;

at::Tensor outlier_channels() { return at::tensor(kOutlierChannels, at::kLong); }

at::Tensor inputs_with_outliers(uint64_t seed, int64_t rows, int64_t in) {
  at::Tensor x = seeded_normal(seed, {rows, in});
  x.index_copy_(1, outlier_channels(), x.index_select(1, outlier_channels()) * kOutlierGain);
  return x;
}

// One linear layer without bias: x W^T.
at::Tensor x_wt(const at::Tensor& x, const at::Tensor& w) { return at::matmul(x, w.t()); }

double mse(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).pow(2).mean().item<double>();
}

// The scale of every element of a weight [out, in].
at::Tensor scale_per_element(const IntGroupWeight& q) {
  return q.scales.to(at::kFloat).index_select(0, q.g_idx.to(at::kLong)).t();
}

}  // namespace

TEST(AwqQuantizer, FollowsLlmAwqOnKnownRows) {
  // [-1, 2] at 2 bits: scale 3 / 3 = 1, zero -round(-1 / 1) = 1, codes round(w) + 1.
  const at::Tensor spans_zero = at::tensor({-1.0f, 0.4f, 0.6f, 2.0f}).view({1, 4});
  EXPECT_TRUE(awq_fake_quantize(spans_zero, 2, -1).equal(at::tensor({-1.0f, 0.0f, 1.0f, 2.0f})
                                                             .view({1, 4})));
  // [1, 4]: scale 1, but the zero -1 clamps to 0, so codes reach only 3 and 4 comes back as 3
  // (GPTQ's quantizer would widen the range to [0, 4] instead).
  const at::Tensor positive = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 4});
  EXPECT_TRUE(awq_fake_quantize(positive, 2, -1).equal(at::tensor({1.0f, 2.0f, 3.0f, 3.0f})
                                                           .view({1, 4})));
}

TEST(AwqQuantizer, StorageDequantizesToTheFakeQuantizer) {
  const at::Tensor w = seeded_normal(11, {64, 256});
  for (int bits : {3, 4})
    for (int group : {32, 128, -1}) {
      SCOPED_TRACE(testing::Message() << bits << " bits, group " << group);
      const at::Tensor fake = awq_fake_quantize(w, bits, group);
      const IntGroupWeight exact = awq_quantize(w, bits, group, at::kFloat);
      EXPECT_FALSE(exact.sym);
      EXPECT_EQ(exact.group_size, group == -1 ? 256 : group);
      EXPECT_TRUE(exact.g_idx.equal(
          at::arange(256, at::kInt).div(exact.group_size, "floor").to(at::kInt)));
      EXPECT_TRUE(int_group_dequantize(exact).equal(fake));

      const IntGroupWeight half = awq_quantize(w, bits, group, at::kHalf);
      EXPECT_EQ(half.scales.scalar_type(), at::kHalf);
      const double maxq = (1 << bits) - 1;
      const at::Tensor bound =
          scale_per_element(exact) * maxq * (kHalfScaleRounding + kFloatProductRounding);
      const at::Tensor err = (int_group_dequantize(half) - fake).abs();
      EXPECT_TRUE((err <= bound).all().item<bool>()) << (err - bound).max().item<double>();
    }
}

TEST(AwqQuantizer, ConstantAndZeroGroupsStayFinite) {
  at::Tensor w = seeded_normal(12, {32, 128});
  w.slice(1, 0, 32).zero_();
  w.slice(1, 32, 64).fill_(0.5);
  w.slice(1, 64, 96).fill_(-0.25);
  for (at::ScalarType dtype : {at::kFloat, at::kHalf}) {
    const at::Tensor deq = int_group_dequantize(awq_quantize(w, 4, 32, dtype));
    EXPECT_TRUE(at::isfinite(deq).all().item<bool>());
  }
  const at::Tensor fake = awq_fake_quantize(w, 4, 32);
  EXPECT_TRUE(at::isfinite(fake).all().item<bool>());
  EXPECT_TRUE(fake.slice(1, 0, 32).eq(0).all().item<bool>());
  // The 1e-5 floor of the range: a constant group keeps only its sign (see awq.h).
  EXPECT_NEAR(fake.slice(1, 32, 64).max().item<double>(), 1e-5, 1e-10);
  EXPECT_NEAR(fake.slice(1, 64, 96).min().item<double>(), -1e-5, 1e-10);
}

TEST(AwqMagnitude, MeanAbsoluteValuePerChannelOverEveryRow) {
  const at::Tensor x = seeded_normal(13, {3, 5, 64});
  const at::Tensor expected = x.abs().reshape({15, 64}).mean(0);
  EXPECT_TRUE(at::allclose(awq_channel_magnitude(x), expected, 1e-6, 1e-7));
  const at::Tensor from_bf16 = awq_channel_magnitude(x.to(at::kBFloat16));
  EXPECT_EQ(from_bf16.scalar_type(), at::kFloat);
  EXPECT_EQ(from_bf16.sizes(), (std::vector<int64_t>{64}));
}

TEST(AwqScaleSearch, RatioZeroIsThePlainQuantizer) {
  const at::Tensor x = inputs_with_outliers(21, 512, 256), w = seeded_normal(22, {128, 256});
  const at::Tensor reference = x_wt(x, w);
  AwqOptions options;
  options.grid = 1;
  const AwqScale plain = awq_search_scale(
      awq_channel_magnitude(x), {w}, [&](const auto& ws) { return x_wt(x, ws[0]); }, reference,
      options);
  EXPECT_EQ(plain.ratio, 0);
  EXPECT_TRUE(plain.scales.eq(1).all().item<bool>());
  const double direct = mse(x_wt(x, awq_fake_quantize(w, 4, 128)), reference);
  EXPECT_NEAR(plain.error, direct, kSameErrorRelative * direct);
}

TEST(AwqScaleSearch, OneLinearBeatsThePlainQuantizerOnOutlierChannels) {
  const at::Tensor x = inputs_with_outliers(23, 1024, 256), w = seeded_normal(24, {128, 256});
  const at::Tensor reference = x_wt(x, w), magnitude = awq_channel_magnitude(x);
  const AwqBlock block = [&](const std::vector<at::Tensor>& ws) { return x_wt(x, ws[0]); };
  for (int bits : {3, 4}) {
    SCOPED_TRACE(testing::Message() << bits << " bits");
    AwqOptions options;
    options.bits = bits;
    AwqOptions ratio_zero = options;
    ratio_zero.grid = 1;
    const AwqScale plain = awq_search_scale(magnitude, {w}, block, reference, ratio_zero);
    const AwqScale awq = awq_search_scale(magnitude, {w}, block, reference, options);
    EXPECT_LE(awq.error, plain.error);
    EXPECT_LT(awq.error, (1 - kAwqMinGainOnOutliers) * plain.error)
        << "ratio " << awq.ratio << ", plain " << plain.error;
    EXPECT_GT(awq.ratio, 0);

    EXPECT_EQ(awq.scales.scalar_type(), at::kFloat);
    at::Tensor others = at::ones({256}, at::kBool);
    others.index_fill_(0, outlier_channels(), false);
    const double least_on_outliers =
        awq.scales.index_select(0, outlier_channels()).min().item<double>();
    EXPECT_GT(least_on_outliers, awq.scales.masked_select(others).max().item<double>());
  }
}

TEST(AwqScaleSearch, GatedPairSharesOneScale) {
  const at::Tensor x = inputs_with_outliers(25, 1024, 256);
  const at::Tensor gate = seeded_normal(26, {192, 256}), up = seeded_normal(27, {192, 256});
  auto mlp = [&](const at::Tensor& g, const at::Tensor& u) {
    return at::silu(x_wt(x, g)) * x_wt(x, u);
  };
  const at::Tensor reference = mlp(gate, up);
  int calls = 0;
  const AwqBlock block = [&](const std::vector<at::Tensor>& ws) {
    ++calls;
    EXPECT_EQ(ws.size(), 2u);
    EXPECT_EQ(ws[0].sizes(), gate.sizes());
    EXPECT_EQ(ws[1].sizes(), up.sizes());
    return mlp(ws[0], ws[1]);
  };
  AwqOptions options;
  const AwqScale awq = awq_search_scale(awq_channel_magnitude(x), {gate, up}, block, reference,
                                        options);
  EXPECT_EQ(calls, options.grid);
  const double plain = mse(mlp(awq_fake_quantize(gate, 4, 128), awq_fake_quantize(up, 4, 128)),
                           reference);
  EXPECT_LE(awq.error, plain * (1 + kSameErrorRelative));
  EXPECT_LT(awq.error, (1 - kAwqMinGainOnOutliers) * plain)
      << "ratio " << awq.ratio << ", plain " << plain;
  EXPECT_EQ(awq.scales.sizes(), (std::vector<int64_t>{256}));
}

namespace {

// Normal weights with about one entry in 64 pushed 3 standard deviations further from 0: a
// group's range stretched by a weight or two, where clipping them pays.
at::Tensor weights_with_outliers(uint64_t seed, int64_t out, int64_t in) {
  const at::Tensor w = seeded_normal(seed, {out, in});
  const at::Tensor pick = seeded_normal(seed + 1, {out, in}).abs() > 2.42;   // P ~ 1/64
  return at::where(pick, w.sign() * (w.abs() + 3), w);
}

// Per row and group of w [out, in], the largest |w|.
at::Tensor group_max_abs(const at::Tensor& w, int64_t group) {
  return w.abs().view({w.size(0), -1, group}).amax(-1);
}

}  // namespace

TEST(AwqClipSearch, LowersTheOutputErrorOnWeightOutliers) {
  // 320 rows: a full batch of the search and a partial one.
  const at::Tensor x = seeded_normal(31, {2048, 256}), w = weights_with_outliers(32, 320, 256);
  const at::Tensor reference = x_wt(x, w);
  for (int bits : {3, 4}) {
    SCOPED_TRACE(testing::Message() << bits << " bits");
    AwqOptions options;
    options.bits = bits;
    const at::Tensor t = awq_search_clip(w, x, options);
    ASSERT_EQ(t.sizes(), (std::vector<int64_t>{320, 2}));
    const at::Tensor clipped = awq_apply_clip(w, t, options.group_size);
    const double plain = mse(x_wt(x, awq_fake_quantize(w, bits, 128)), reference);
    const double clip = mse(x_wt(x, awq_fake_quantize(clipped, bits, 128)), reference);
    EXPECT_LT(clip, (1 - (bits == 3 ? kClipMinGainAt3Bits : 0)) * plain) << "without " << plain;
  }
}

TEST(AwqClipSearch, ThresholdsStayWithinTheShrinkRange) {
  const at::Tensor x = seeded_normal(33, {600, 256}), w = weights_with_outliers(34, 64, 256);
  for (int group : {32, -1}) {
    SCOPED_TRACE(group);
    AwqOptions options;
    options.group_size = group;
    options.bits = 3;
    const at::Tensor t = awq_search_clip(w, x, options);
    const at::Tensor max_abs = group_max_abs(w, group == -1 ? 256 : group);
    EXPECT_TRUE((t <= max_abs).all().item<bool>());
    EXPECT_TRUE((t >= (1 - options.max_shrink) * max_abs).all().item<bool>());
    EXPECT_TRUE((t < max_abs).any().item<bool>());   // some group did pay to clip

    const at::Tensor clipped = awq_apply_clip(w, t, group);
    const at::Tensor limit = t.repeat_interleave(group == -1 ? 256 : group, 1);
    EXPECT_TRUE((clipped.abs() <= limit).all().item<bool>());
    EXPECT_TRUE(at::where(w.abs() <= limit, clipped == w, clipped.abs() == limit)
                    .all()
                    .item<bool>());
  }
}

TEST(AwqClipSearch, SamplesRowsWithOneStrideAcrossTheInputs) {
  const at::Tensor x = seeded_normal(35, {4, 256, 128}), w = weights_with_outliers(36, 32, 128);
  AwqOptions options;
  options.clip_tokens = 512;
  const at::Tensor every_second = x.reshape({1024, 128}).slice(0, 0, 1024, 2);
  EXPECT_TRUE(awq_search_clip(w, x, options).equal(awq_search_clip(w, every_second, options)));
}

TEST(Awq, RejectsBadParametersNamingThem) {
  const at::Tensor w = at::zeros({32, 64}), x = at::ones({8, 64});
  const std::string bits = error_of([&] { awq_fake_quantize(w, 5, 32); });
  EXPECT_NE(bits.find("AWQ bits must be 2, 3, 4 or 8, got 5"), std::string::npos) << bits;
  const std::string split = error_of([&] { awq_quantize(w, 4, 48, at::kHalf); });
  EXPECT_NE(split.find("AWQ group_size 48 does not divide the 64 input features"),
            std::string::npos)
      << split;
  const std::string zero = error_of([&] { awq_fake_quantize(w, 4, 0); });
  EXPECT_NE(zero.find("group_size must be positive, or -1"), std::string::npos) << zero;

  AwqOptions five_bits;
  five_bits.bits = 5;
  const AwqBlock block = [&](const std::vector<at::Tensor>& ws) { return x_wt(x, ws[0]); };
  const at::Tensor m = awq_channel_magnitude(x), ref = x_wt(x, w);
  const std::string search = error_of([&] { awq_search_scale(m, {w}, block, ref, five_bits); });
  EXPECT_NE(search.find("got 5"), std::string::npos) << search;
  const std::string clip = error_of([&] { awq_search_clip(w, x, five_bits); });
  EXPECT_NE(clip.find("got 5"), std::string::npos) << clip;

  AwqOptions group_48;
  group_48.group_size = 48;
  const std::string clip_group = error_of([&] { awq_search_clip(w, x, group_48); });
  EXPECT_NE(clip_group.find("group_size 48 does not divide"), std::string::npos) << clip_group;
  AwqOptions shrink;
  shrink.max_shrink = 1;
  const std::string max_shrink = error_of([&] { awq_search_clip(w, x, shrink); });
  EXPECT_NE(max_shrink.find("max_shrink must lie in [0, 1), got 1"), std::string::npos)
      << max_shrink;

  AwqOptions group_32;
  group_32.group_size = 32;
  const std::string in = error_of(
      [&] { awq_search_scale(m, {w, at::zeros({32, 32})}, block, ref, group_32); });
  EXPECT_NE(in.find("weight 1 has 32 input features but magnitude 64"), std::string::npos) << in;
  const std::string shape = error_of([&] {
    awq_search_scale(m, {w}, [&](const auto&) { return at::zeros({8, 3}); }, ref, group_32);
  });
  EXPECT_NE(shape.find("output has shape [8, 3] but the reference [8, 32]"), std::string::npos)
      << shape;
  const std::string threshold = error_of([&] { awq_apply_clip(w, at::ones({32, 3}), 32); });
  EXPECT_NE(threshold.find("threshold must be [32, 2]"), std::string::npos) << threshold;
}
