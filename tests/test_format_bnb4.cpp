// bitsandbytes NF4 / FP4: bit-for-bit parity with the reference algorithm's fixture
// (tests/parity/bnb_reference.py), hand-checked codes and boundaries, round-trip bounds, sizes.
#include "qsweep/model/format_bnb4.h"
#include "qsweep/model/linear.h"
#include "qsweep/quant/bnb4.h"
#include "quant_test_helpers.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>

using namespace qsweep;

namespace {

// Relative slack on the round-trip bounds: x * (1 / absmax) and code * absmax each round once.
constexpr double kBnb4RoundTripSlack = 1e-6;
// linear_forward against x W^T of the dequantized weight, both float32 products.
constexpr double kBnb4ForwardTolerance = 1e-5;

nlohmann::json fixture() {
  std::ifstream in(std::string(QSWEEP_SOURCE_DIR) + "/tests/data/bnb4_reference.json");
  return nlohmann::json::parse(in);
}

at::ScalarType dtype_named(const std::string& name) {
  return name == "float16" ? at::kHalf : name == "bfloat16" ? at::kBFloat16 : at::kFloat;
}

at::Tensor fixture_input(const nlohmann::json& c) {
  const int64_t out = c["shape"][0], in = c["shape"][1], blocksize = c["blocksize"];
  if (c.contains("input")) {
    std::vector<uint8_t> bytes = from_hex(c["input"]);
    return at::from_blob(bytes.data(), {out, in}, at::kFloat).clone();
  }
  at::Tensor w = lcg_values(c["seed"], out * in);
  if (c["zero_block"]) w.slice(0, blocksize, 2 * blocksize).zero_();
  return w.view({out, in});
}

float next_up(float x) { return std::nextafter(x, std::numeric_limits<float>::infinity()); }

}  // namespace

TEST(Bnb4Parity, StateMatchesReferenceAlgorithmBitForBit) {
  const nlohmann::json doc = fixture();
  ASSERT_EQ(doc["cases"].size(), 6u);
  for (const nlohmann::json& c : doc["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const Bnb4Type type = c["type"] == "nf4" ? Bnb4Type::nf4 : Bnb4Type::fp4;
    const Bnb4Weight q = quantize_bnb4(fixture_input(c), type, c["blocksize"], c["double_quant"],
                                       dtype_named(c["compute_dtype"]));
    EXPECT_EQ(bytes_of(q.packed), from_hex(c["packed"]));
    EXPECT_EQ(bytes_of(q.code), from_hex(c["code"]));
    if (c["double_quant"]) {
      EXPECT_FALSE(q.absmax.defined());
      EXPECT_EQ(bytes_of(q.qabsmax), from_hex(c["qabsmax"]));
      EXPECT_EQ(bytes_of(q.absmax2), from_hex(c["absmax2"]));
      EXPECT_EQ(bytes_of(at::tensor({q.offset}, at::kFloat)), from_hex(c["offset"]));
      EXPECT_EQ(bytes_of(q.code2), from_hex(doc["dynamic_map"]));
      EXPECT_EQ(bytes_of(bnb4_block_absmax(q)), from_hex(c["resolved_absmax"]));
    } else {
      EXPECT_EQ(bytes_of(q.absmax), from_hex(c["absmax"]));
    }
    if (c.contains("dequantized"))
      EXPECT_EQ(bytes_of(bnb4_dequantize(q).reshape(-1)), from_hex(c["dequantized"]));
  }
}

TEST(Bnb4Codes, TablesHoldBitsandbytesValues) {
  const at::Tensor nf4 = bnb4_code(Bnb4Type::nf4), fp4 = bnb4_code(Bnb4Type::fp4);
  EXPECT_EQ(nf4[0].item<float>(), -1.0f);
  EXPECT_EQ(nf4[7].item<float>(), 0.0f);
  EXPECT_EQ(nf4[8].item<float>(), 0.07958029955625534f);
  EXPECT_EQ(nf4[15].item<float>(), 1.0f);
  EXPECT_EQ(fp4[1].item<float>(), 0.0625f / 12.0f);   // smallest subnormal
  EXPECT_EQ(fp4[3].item<float>(), 1.0f);              // 0b011 = 12 / 12
  EXPECT_EQ(fp4[5].item<float>(), 0.5f);              // 0b101 = 6 / 12
  EXPECT_EQ(fp4[11].item<float>(), -1.0f);
  EXPECT_TRUE(std::signbit(fp4[8].item<float>()));    // 0b1000 is -0
}

TEST(Bnb4Codes, Nf4BucketsSplitAtTheKernelsThresholdsWithTiesDown) {
  // dQuantizeNF4's literals, which a compiler rounds straight to float32: four of them (0, 8,
  // 12, 14) sit one ulp off the float32 midpoint of their two codes, the rest on it.
  const float thresholds[15] = {
      -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
      -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
      0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
      0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};
  const at::Tensor code = bnb4_code(Bnb4Type::nf4);
  int off_midpoint = 0;
  for (int k = 0; k < 15; ++k) {
    EXPECT_EQ(bnb_nf4_code_of(thresholds[k]), k) << "threshold " << k;
    EXPECT_EQ(bnb_nf4_code_of(next_up(thresholds[k])), k + 1) << "above threshold " << k;
    const float mid = (code[k].item<float>() + code[k + 1].item<float>()) / 2.0f;
    EXPECT_LE(std::fabs(mid - thresholds[k]), std::fabs(next_up(mid) - mid)) << k;
    off_midpoint += mid != thresholds[k];
  }
  EXPECT_EQ(off_midpoint, 4);
  EXPECT_EQ(bnb_nf4_code_of(0.0f), 7);
  EXPECT_EQ(bnb_nf4_code_of(-1.0f), 0);
  EXPECT_EQ(bnb_nf4_code_of(1.0f), 15);
  EXPECT_EQ(bnb_nf4_code_of(std::nanf("")), 0);  // a block of zeros: 0 * (1 / 0)
}

TEST(Bnb4Codes, Fp4TreeUsesKernelThresholdsAndSignBit) {
  EXPECT_EQ(bnb_fp4_code_of(1.0f), 0b0011);
  EXPECT_EQ(bnb_fp4_code_of(-1.0f), 0b1011);
  EXPECT_EQ(bnb_fp4_code_of(0.5f), 0b0101);
  EXPECT_EQ(bnb_fp4_code_of(-0.25f), 0b1111);
  EXPECT_EQ(bnb_fp4_code_of(-0.0f), 0b0000);     // the sign bit is set for x < 0 only
  EXPECT_EQ(bnb_fp4_code_of(-1e-4f), 0b1000);    // negative values that round to zero keep it
  // The kernel's threshold 0.583333f lies below the float32 midpoint of 0.5 and 2/3.
  const float midpoint = (0.5f + 8.0f / 12.0f) / 2.0f;
  EXPECT_LT(0.583333f, midpoint);
  EXPECT_EQ(bnb_fp4_code_of(next_up(0.583333f)), 0b0010);
  EXPECT_EQ(bnb_fp4_code_of(0.583333f), 0b0101);
  EXPECT_EQ(bnb_fp4_code_of(0.29166667f), 0b0111);
  EXPECT_EQ(bnb_fp4_code_of(next_up(0.29166667f)), 0b0100);
}

TEST(Bnb4Codes, DynamicMapIsSortedSignedAndMapsItsValuesToThemselves) {
  const at::Tensor map = bnb_dynamic_map();
  ASSERT_EQ(map.numel(), 256);
  const float* c = map.data_ptr<float>();
  EXPECT_EQ(c[0], -0.99296875f);
  EXPECT_EQ(c[127], 0.0f);
  EXPECT_EQ(c[255], 1.0f);
  EXPECT_NEAR(c[128], 5.5e-7, 1e-12);    // 1e-6 * (0.1 + 1) / 2
  for (int k = 0; k < 127; ++k) EXPECT_EQ(c[k], -c[254 - k]) << k;
  for (int k = 0; k + 1 < 256; ++k) EXPECT_LT(c[k], c[k + 1]) << k;
  for (int k = 0; k < 256; ++k) EXPECT_EQ(bnb_dynamic_code_of(c, c[k]), k) << k;
}

TEST(Bnb4RoundTrip, EachElementWithinHalfTheGapToItsNeighbourCode) {
  const at::Tensor w = seeded_normal(1, {48, 200});   // 9600: a partial last block at 128
  for (Bnb4Type type : {Bnb4Type::nf4, Bnb4Type::fp4}) {
    const Bnb4Weight q = quantize_bnb4(w, type, 128, false, at::kFloat);
    const at::Tensor sorted = std::get<0>(bnb4_code(type).sort());
    const at::Tensor gaps = sorted.slice(0, 1) - sorted.slice(0, 0, -1);
    const double half_gap = gaps.max().item<double>() / 2;
    const at::Tensor absmax =
        bnb4_block_absmax(q).index_select(0, at::arange(w.numel(), at::kLong).div(128, "floor"));
    const at::Tensor err = (w.reshape(-1) - bnb4_dequantize(q).reshape(-1)).abs();
    EXPECT_TRUE((err <= absmax * half_gap * (1 + kBnb4RoundTripSlack)).all().item<bool>());
    // NF4's largest gap is between 0.7229568 and 1; most elements sit in far finer buckets.
    EXPECT_LT((err / absmax).mean().item<double>(), half_gap / 2);
  }
}

TEST(Bnb4RoundTrip, DoubleQuantAbsmaxWithinHalfTheNestedCodeGap) {
  const at::Tensor w = seeded_normal(2, {64, 1100});   // 1100 blocks of 64: 5 nested blocks
  const Bnb4Weight plain = quantize_bnb4(w, Bnb4Type::nf4, 64, false, at::kFloat);
  const Bnb4Weight nested = quantize_bnb4(w, Bnb4Type::nf4, 64, true, at::kFloat);
  const at::Tensor code2 = nested.code2;
  const double half_gap = (code2.slice(0, 1) - code2.slice(0, 0, -1)).max().item<double>() / 2;
  const at::Tensor absmax2 = nested.absmax2.index_select(
      0, at::arange(plain.absmax.numel(), at::kLong).div(kBnbNestedBlocksize, "floor"));
  const at::Tensor err = (bnb4_block_absmax(nested) - plain.absmax).abs();
  EXPECT_TRUE((err <= absmax2 * half_gap * (1 + kBnb4RoundTripSlack) + 1e-7).all().item<bool>());
  EXPECT_EQ(nested.absmax2.numel(), 5);
}

TEST(Bnb4Arguments, RejectsBlocksizeBitsandbytesDoesNotAccept) {
  const at::Tensor w = at::zeros({4, 64});
  const std::string message =
      error_of([&] { quantize_bnb4(w, Bnb4Type::nf4, 48, false, at::kHalf); });
  EXPECT_NE(message.find("blocksize 48"), std::string::npos) << message;
  EXPECT_NE(message.find("32, 64, 128"), std::string::npos) << message;
  EXPECT_EQ(error_of([&] { quantize_bnb4(w, Bnb4Type::nf4, 32, false, at::kHalf); }),
            "(no error)");
}

TEST(Bnb4Bytes, Nf4WithDoubleQuantCostsAbout4Point127BitsPerWeight) {
  const int64_t out = 1024, in = 4096, n = out * in, blocks = n / 64;
  const Linear layer{quantize_bnb4(seeded_normal(3, {out, in}), Bnb4Type::nf4, 64, true,
                                   at::kHalf)};
  // Codes, one byte per block, a float32 absmax2 per 256 blocks, the offset, both code tables.
  const int64_t expected = n / 2 + blocks + 4 * (blocks / 256) + 4 + 4 * 256 + 4 * 16;
  EXPECT_EQ(linear_bytes(layer), expected);
  const double bits_without_tables = 8.0 * (expected - 4 * 256 - 4 * 16 - 4) / n;
  EXPECT_NEAR(bits_without_tables, 4.0 + 8.0 / 64 + 32.0 / (64 * 256), 1e-9);   // 4.127
  EXPECT_NEAR(8.0 * linear_bytes(layer) / n, 4.127, 0.005);

  const Linear plain{quantize_bnb4(seeded_normal(3, {out, in}), Bnb4Type::fp4, 64, false,
                                   at::kHalf)};
  EXPECT_EQ(linear_bytes(plain), n / 2 + 4 * blocks + 4 * 16);   // 4.5 bits per weight
}

TEST(Bnb4Linear, ForwardIsInputTimesDequantizedWeight) {
  const at::Tensor w = seeded_normal(4, {96, 128}), x = seeded_normal(5, {3, 7, 128});
  const Linear layer{quantize_bnb4(w, Bnb4Type::nf4, 64, true, at::kBFloat16)};
  EXPECT_EQ(linear_in_features(layer), 128);
  EXPECT_EQ(linear_out_features(layer), 96);
  const at::Tensor deq = linear_dequantize(layer);
  EXPECT_TRUE(deq.equal(bnb4_dequantize(std::get<Bnb4Weight>(layer.weight))));
  const at::Tensor y = linear_forward(layer, x);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, 7, 96}));
  EXPECT_TRUE(at::allclose(y, at::matmul(x, deq.t()), kBnb4ForwardTolerance, kBnb4ForwardTolerance));
  EXPECT_EQ(linear_forward(layer, x.to(at::kBFloat16)).scalar_type(), at::kBFloat16);
}
