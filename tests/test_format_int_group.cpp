// GPTQ-layout integer groups: packing at 2, 3, 4 and 8 bits, RTN with GPTQ's quantizer, sizes.
#include "qsweep/model/format_int_group.h"
#include "qsweep/model/linear.h"
#include "qsweep/quant/gptq_quantizer.h"
#include "qsweep/quant/rtn.h"
#include "quant_test_helpers.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using namespace qsweep;

namespace {

// Slack on |w - deq| <= scale / 2 with float32 scales, in scales per code step: the float32
// scale is off by up to half an ulp (2^-24 of it), which scale * (q - zero) multiplies by up to
// 2^bits, and w / scale and the subtraction round once more.
constexpr double kRtnScaleUlpsPerStep = 1.0 / (1 << 23);
// With float16 scales the codes were chosen with the float32 scale: the stored scale differs
// by up to 2^-11 of itself, times |q - zero| <= maxq.
constexpr double kRtnHalfScaleSlack = 1.0 / 2048;

at::Tensor codes_covering_every_value(int bits, int64_t rows, int64_t cols) {
  const at::Tensor i = at::arange(rows, at::kInt).unsqueeze(1), j = at::arange(cols, at::kInt);
  return at::remainder(i * 7 + j * 3 + i * j, 1 << bits).to(at::kInt);
}

uint32_t word(const at::Tensor& packed, int64_t r, int64_t c) {
  return static_cast<uint32_t>(packed[r][c].item<int32_t>());
}

// The element-wise scale of a weight [out, in].
at::Tensor element_scales(const IntGroupWeight& q) {
  return q.scales.to(at::kFloat).index_select(0, q.g_idx.to(at::kLong)).t();
}

}  // namespace

TEST(IntGroupPacking, RoundTripsEveryCodeAlongBothDimensions) {
  for (int bits : {2, 3, 4, 8}) {
    SCOPED_TRACE(bits);
    const at::Tensor codes = codes_covering_every_value(bits, 64, 96);
    EXPECT_EQ(codes.max().item<int>(), (1 << bits) - 1);
    const at::Tensor by_rows = pack_int_codes(codes, bits, 0);
    EXPECT_EQ(by_rows.sizes(), (std::vector<int64_t>{64 * bits / 32, 96}));
    EXPECT_TRUE(unpack_int_codes(by_rows, bits, 0).equal(codes));
    const at::Tensor by_cols = pack_int_codes(codes, bits, 1);
    EXPECT_EQ(by_cols.sizes(), (std::vector<int64_t>{64, 96 * bits / 32}));
    EXPECT_TRUE(unpack_int_codes(by_cols, bits, 1).equal(codes));
  }
}

TEST(IntGroupPacking, ThreeBitCodesTenAndTwentyOneStraddleWords) {
  // AutoGPTQ's pack: word 0 holds codes 0-9 and the low 2 bits of code 10, word 1 its high bit,
  // codes 11-20 and the low bit of code 21, word 2 the rest of code 21 and codes 22-31.
  at::Tensor codes = at::zeros({32, 1}, at::kInt);
  codes[10][0] = 0b111;
  codes[21][0] = 0b101;
  codes[31][0] = 0b110;
  const at::Tensor packed = pack_int_codes(codes, 3, 0);
  ASSERT_EQ(packed.size(0), 3);
  EXPECT_EQ(word(packed, 0, 0), 0xC0000000u);
  EXPECT_EQ(word(packed, 1, 0), 0x80000001u);
  EXPECT_EQ(word(packed, 2, 0), 0x2u | (0b110u << 29));
  EXPECT_TRUE(unpack_int_codes(packed, 3, 0).equal(codes));
}

TEST(IntGroupPacking, FourBitCodesFillWordsLowNibbleFirst) {
  const at::Tensor codes = at::arange(8, at::kInt).view({8, 1});
  EXPECT_EQ(word(pack_int_codes(codes, 4, 0), 0, 0), 0x76543210u);
  const at::Tensor two_bit = at::tensor({1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, at::kInt);
  EXPECT_EQ(word(pack_int_codes(two_bit.view({16, 1}), 2, 0), 0, 0), 0xC0000039u);
  const at::Tensor eight_bit = at::tensor({0x12, 0x34, 0x56, 0xFF}, at::kInt).view({1, 4});
  EXPECT_EQ(word(pack_int_codes(eight_bit, 8, 1), 0, 0), 0xFF563412u);
}

TEST(IntGroupPacking, RejectsCodesOutOfRangeAndPartialWords) {
  EXPECT_NE(error_of([] { pack_int_codes(at::full({8, 1}, 16, at::kInt), 4, 0); }).find("[0, 15]"),
            std::string::npos);
  EXPECT_NE(error_of([] { pack_int_codes(at::zeros({12, 1}, at::kInt), 3, 0); })
                .find("multiple of 32"),
            std::string::npos);
}

TEST(Rtn, SymmetricZerosAreStoredAsGptqCheckpointsHoldThem) {
  const IntGroupWeight q = quantize_rtn(seeded_normal(1, {16, 128}), 4, 64, true, at::kHalf);
  // zero 8 stored as 7 in every nibble: the 0x77777777 of every symmetric 4-bit checkpoint.
  EXPECT_TRUE(q.zeros.eq(0x77777777).all().item<bool>());
  EXPECT_EQ(q.zeros.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_TRUE(int_group_zero_points(q).eq(8).all().item<bool>());
}

TEST(Rtn, EveryWeightWithinHalfItsScale) {
  const at::Tensor w = seeded_normal(2, {64, 256});
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, 128, -1})
      for (bool sym : {true, false}) {
        SCOPED_TRACE(testing::Message() << bits << " bits, group " << group << ", sym " << sym);
        const IntGroupWeight q = quantize_rtn(w, bits, group, sym, at::kFloat);
        EXPECT_EQ(q.group_size, group == -1 ? 256 : group);
        const at::Tensor err = (w - int_group_dequantize(q)).abs();
        const at::Tensor bound = element_scales(q) * (0.5 + (1 << bits) * kRtnScaleUlpsPerStep);
        EXPECT_TRUE((err <= bound).all().item<bool>()) << (err - bound).max().item<double>();
      }
}

TEST(Rtn, HalfScalesAddOnlyTheirRoundingToTheBound) {
  const at::Tensor w = seeded_normal(3, {32, 256}).to(at::kHalf).to(at::kFloat);
  const IntGroupWeight q = quantize_rtn(w, 4, 128, false, at::kHalf);
  EXPECT_EQ(q.scales.scalar_type(), at::kHalf);
  const at::Tensor err = (w - int_group_dequantize(q)).abs();
  const at::Tensor scale = element_scales(q);
  EXPECT_TRUE((err <= scale * (0.5 + 15 * kRtnHalfScaleSlack)).all().item<bool>());
}

TEST(Rtn, GroupIndexIsInputChannelOverGroupSize) {
  const IntGroupWeight q = quantize_rtn(seeded_normal(4, {32, 256}), 3, 64, true, at::kHalf);
  EXPECT_EQ(q.g_idx.scalar_type(), at::kInt);
  EXPECT_TRUE(q.g_idx.equal(at::arange(256, at::kInt).div(64, "floor").to(at::kInt)));
  EXPECT_TRUE(q.sequential_groups);  // so the GPU kernels compute the groups
  EXPECT_EQ(q.qweight.sizes(), (std::vector<int64_t>{256 * 3 / 32, 32}));
  EXPECT_EQ(q.zeros.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(q.scales.sizes(), (std::vector<int64_t>{4, 32}));
}

TEST(Rtn, GroupOfZerosTakesTheUnitRangeAndDequantizesToZero) {
  at::Tensor w = seeded_normal(5, {8, 64});
  w.slice(1, 0, 32).zero_();
  for (bool sym : {true, false}) {
    const IntGroupWeight q = quantize_rtn(w, 4, 32, sym, at::kFloat);
    EXPECT_FLOAT_EQ(q.scales[0][0].item<float>(), 2.0f / 15);
    // Symmetric: (15 + 1) / 2. Asymmetric: round(1 / scale), and 1 / float32(2 / 15) is
    // 7.4999996, so 7.
    EXPECT_EQ(int_group_zero_points(q)[0][0].item<int>(), sym ? 8 : 7);
    EXPECT_TRUE(int_group_dequantize(q).slice(1, 0, 32).eq(0).all().item<bool>());
  }
}

TEST(Rtn, AsymmetricZeroPointOfZeroSurvivesTheMinusOneStorage) {
  const at::Tensor w = seeded_normal(6, {8, 64}).abs();    // every group's minimum is >= 0
  const IntGroupWeight q = quantize_rtn(w, 4, 32, false, at::kFloat);
  EXPECT_TRUE(int_group_zero_points(q).eq(0).all().item<bool>());
  EXPECT_TRUE(q.zeros.eq(-1).all().item<bool>());   // every nibble 0xF
  const at::Tensor err = (w - int_group_dequantize(q)).abs();
  EXPECT_TRUE((err <= element_scales(q) * (0.5 + 16 * kRtnScaleUlpsPerStep)).all().item<bool>());
}

TEST(Rtn, QuantizerFollowsGptqOnAKnownRow) {
  // xmin -1, xmax 2, 2 bits: scale (2 - -1) / 3 = 1, asymmetric zero round(1 / 1) = 1;
  // symmetric widens to [-2, 2]: scale 4 / 3, zero (3 + 1) / 2 = 2.
  const at::Tensor row = at::tensor({-1.0f, 0.4f, 0.6f, 2.0f}).view({1, 4});
  const GroupScale asym = gptq_find_params(row, 2, false);
  EXPECT_FLOAT_EQ(asym.scale.item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(asym.zero.item<float>(), 1.0f);
  EXPECT_TRUE(gptq_codes(row, asym, 2).equal(at::tensor({0, 1, 2, 3}, at::kInt).view({1, 4})));
  const GroupScale sym = gptq_find_params(row, 2, true);
  EXPECT_FLOAT_EQ(sym.scale.item<float>(), 4.0f / 3);
  EXPECT_FLOAT_EQ(sym.zero.item<float>(), 2.0f);
  EXPECT_TRUE(gptq_codes(row, sym, 2).equal(at::tensor({1, 2, 2, 3}, at::kInt).view({1, 4})));
}

TEST(Rtn, RejectsBadParametersNamingThem) {
  const at::Tensor w = at::zeros({32, 64});
  const std::string bits = error_of([&] { quantize_rtn(w, 5, 32, true, at::kHalf); });
  EXPECT_NE(bits.find("bits must be 2, 3, 4 or 8, got 5"), std::string::npos) << bits;
  const std::string zero = error_of([&] { quantize_rtn(w, 4, 0, true, at::kHalf); });
  EXPECT_NE(zero.find("group_size must be positive"), std::string::npos) << zero;
  const std::string split = error_of([&] { quantize_rtn(w, 4, 48, true, at::kHalf); });
  EXPECT_NE(split.find("group_size 48 does not divide the 64 input features"), std::string::npos)
      << split;
  const std::string words = error_of([&] { quantize_rtn(at::zeros({8, 48}), 3, -1, true, at::kHalf); });
  EXPECT_NE(words.find("divisible by 32"), std::string::npos) << words;
}

TEST(IntGroupBytes, CountsCodesZerosScalesAndGroupIndex) {
  const int64_t out = 256, in = 1024;
  const Linear layer{quantize_rtn(seeded_normal(7, {out, in}), 4, 128, true, at::kHalf)};
  const int64_t groups = in / 128;
  const int64_t expected = in * out / 2 + groups * out / 2 + groups * out * 2 + in * 4;
  EXPECT_EQ(linear_bytes(layer), expected);
  EXPECT_NEAR(8.0 * linear_bytes(layer) / (out * in), 4.0 + 4.0 / 128 + 16.0 / 128 + 32.0 / out,
              1e-12);
}

TEST(IntGroupLinear, ForwardIsInputTimesDequantizedWeight) {
  const Linear layer{quantize_rtn(seeded_normal(8, {64, 128}), 3, 32, false, at::kHalf)};
  const at::Tensor x = seeded_normal(9, {5, 128});
  const at::Tensor deq = linear_dequantize(layer);
  EXPECT_TRUE(at::allclose(linear_forward(layer, x), at::matmul(x, deq.t()), 1e-5, 1e-5));
  EXPECT_EQ(linear_in_features(layer), 128);
  EXPECT_EQ(linear_out_features(layer), 64);
}
