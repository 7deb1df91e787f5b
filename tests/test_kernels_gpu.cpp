// The quantized-weight kernels against CPU float32 references built plainly from the documented
// layouts. Labelled "gpu"; built only where libtorch has CUDA; skipped, visibly, where no GPU is
// visible. Tolerances are relative: ||y - ref|| / ||ref||, named per format and dtype.
#include "qsweep/kernels/decode_kernels.h"
#include "qsweep/kernels/dense_gemv.h"
#include "qsweep/kernels/quant_kernels.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/InferenceMode.h>
#include <c10/cuda/CUDAGuard.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "gpu_test_helpers.h"

using namespace qsweep;
using namespace qsweep::cuda;

namespace {

// The kernels accumulate in float32 from the same stored values the reference uses, so what
// remains is summation order (far below these) and the one rounding of y to the output dtype:
// 2^-11 relative for float16, 2^-8 for bfloat16, with headroom for outputs near zero.
constexpr double kFp16OutputTolerance = 2e-3;
constexpr double kBf16OutputTolerance = 1e-2;
// LLM.int8() also rounds x to 8 bits per row, about 1/254 of the row's absmax per element:
// against the float reference that, not the kernel, is what this tolerance admits.
constexpr double kInt8ActivationTolerance = 4e-2;
// Dequantized weights: one rounding of an exact float32 product to the compute dtype.
constexpr double kFp16DequantTolerance = 1e-3;
constexpr double kBf16DequantTolerance = 8e-3;

double output_tolerance(at::ScalarType t) {
  return t == at::kHalf ? kFp16OutputTolerance : kBf16OutputTolerance;
}
double dequant_tolerance(at::ScalarType t) {
  return t == at::kHalf ? kFp16DequantTolerance : kBf16DequantTolerance;
}

// The reference product: float32 x @ W^T on the CPU. The test's own dequantizers below are the
// one place to swap for qsweep's linear_dequantize once the formats' CPU code lands.
at::Tensor reference_matmul(const at::Tensor& x, const at::Tensor& w_float) {
  return at::matmul(x.to(at::kCPU, at::kFloat), w_float.to(at::kCPU, at::kFloat).t());
}

// --- GPTQ layout ---------------------------------------------------------------------------
// codes int64 [K, C] -> int32 [ceil(K * bits / 32), C]: code k of column c at bits
// [k * bits, k * bits + bits) of column c's little-endian stream of words.
at::Tensor pack_stream(const at::Tensor& codes, int bits) {
  const int64_t k_count = codes.size(0), cols = codes.size(1);
  const int64_t rows = (k_count * bits + 31) / 32;
  std::vector<uint32_t> words(rows * cols, 0u);
  const auto c = codes.accessor<int64_t, 2>();
  for (int64_t k = 0; k < k_count; ++k)
    for (int64_t n = 0; n < cols; ++n) {
      const int64_t bit = k * bits, w = bit / 32, off = bit % 32;
      const uint64_t v = static_cast<uint64_t>(c[k][n]);
      words[w * cols + n] |= static_cast<uint32_t>(v << off);
      if (off + bits > 32) words[(w + 1) * cols + n] |= static_cast<uint32_t>(v >> (32 - off));
    }
  return at::from_blob(words.data(), {rows, cols}, at::kInt).clone();
}

// The inverse, written with at:: ops: int32 [R, C] -> int64 [count, C].
at::Tensor unpack_stream(const at::Tensor& words, int64_t count, int bits) {
  const at::Tensor w64 = words.to(at::kCPU, at::kLong).bitwise_and(static_cast<int64_t>(0xffffffffll));
  const at::Tensor bit = at::arange(count, at::kLong) * bits;
  const at::Tensor word = at::floor_divide(bit, 32), off = at::remainder(bit, 32).unsqueeze(1);
  const at::Tensor lo = at::bitwise_right_shift(w64.index_select(0, word), off);
  const at::Tensor next = (word + 1).clamp_max(words.size(0) - 1);
  const at::Tensor hi = at::bitwise_left_shift(w64.index_select(0, next), 32 - off) *
                        (off + bits > 32).to(at::kLong);
  return at::bitwise_or(lo, hi).bitwise_and(static_cast<int64_t>((1ll << bits) - 1));
}

struct IntGroupCase {
  at::Tensor qweight, zeros, scales, g_idx;  // CPU
  int bits = 4;
  int64_t in = 0, out = 0, group = 0;
};

IntGroupCase make_int_group(int64_t in, int64_t out, int bits, int64_t group, bool act_order,
                            at::ScalarType dtype) {
  IntGroupCase w;
  w.bits = bits, w.in = in, w.out = out, w.group = group;
  const int64_t groups = (in + group - 1) / group;
  const int64_t levels = 1ll << bits;
  w.qweight = pack_stream(at::randint(levels, {in, out}, at::kLong), bits);
  // zeros pack along the output dimension: pack the transpose, then transpose back.
  w.zeros = pack_stream(at::randint(levels, {groups, out}, at::kLong).t().contiguous(), bits)
                .t()
                .contiguous();
  w.scales = (at::rand({groups, out}) * 0.02 + 0.005).to(dtype);
  const at::Tensor order = act_order ? at::randperm(in, at::kLong) : at::arange(in, at::kLong);
  w.g_idx = at::floor_divide(order, group).to(at::kInt);
  return w;
}

// W [out, in] = scale[g] * (q - zero[g]), g = g_idx[k], from the layout alone; the stored zero
// field is zero - 1 (modulo 2^bits), as GPTQ checkpoints keep it.
at::Tensor dequantize_int_group(const IntGroupCase& w) {
  const at::Tensor q = unpack_stream(w.qweight, w.in, w.bits);                     // [in, out]
  const at::Tensor stored = unpack_stream(w.zeros.t().contiguous(), w.out, w.bits).t();
  const at::Tensor z = at::bitwise_and(stored + 1, (1 << w.bits) - 1);             // [groups, out]
  const at::Tensor g = w.g_idx.to(at::kLong);
  const at::Tensor s = w.scales.to(at::kFloat).index_select(0, g);
  return (s * (q - z.index_select(0, g)).to(at::kFloat)).t().contiguous();
}

// The case on the GPU, with its g_idx, or (sequential groups only) without: the groups then
// computed from the group size, as the model runs a weight without act-order.
IntGroupTensors to_gpu(const IntGroupCase& w, bool with_g_idx = true) {
  return {w.qweight.to(kGpu), w.zeros.to(kGpu), w.scales.to(kGpu),
          with_g_idx ? w.g_idx.to(kGpu) : at::Tensor(), w.bits, w.in, w.group};
}

// --- bitsandbytes 4-bit ----------------------------------------------------------------------
// bitsandbytes' NF4 and FP4 quant maps (functional.py's tables: data, not code).
const std::vector<float> kNf4 = {-1.0f, -0.6961928009986877f, -0.5250730514526367f,
                                 -0.39491748809814453f, -0.28444138169288635f,
                                 -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                                 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                                 0.7229568362236023f, 1.0f};
const std::vector<float> kFp4 = {0.0f, 0.0052083333f, 0.6666667f, 1.0f, 0.3333333f, 0.5f,
                                 0.1666667f, 0.25f, -0.0f, -0.0052083333f, -0.6666667f, -1.0f,
                                 -0.3333333f, -0.5f, -0.1666667f, -0.25f};

struct Bnb4Case {
  Bnb4Tensors w;       // CPU
  at::Tensor codes;    // int64 [out * in]
};

Bnb4Case make_bnb4(int64_t in, int64_t out, bool nf4, bool double_quant, int64_t blocksize) {
  Bnb4Case c;
  Bnb4Tensors& w = c.w;
  w.in = in, w.out = out, w.blocksize = blocksize;
  const int64_t numel = in * out, blocks = (numel + blocksize - 1) / blocksize;
  c.codes = at::randint(16, {numel}, at::kLong);
  at::Tensor padded = at::zeros({numel + numel % 2}, at::kLong);
  padded.narrow(0, 0, numel).copy_(c.codes);
  const at::Tensor pairs = padded.view({-1, 2});
  w.packed = (pairs.select(1, 0) * 16 + pairs.select(1, 1)).to(at::kByte);
  w.code = at::tensor(nf4 ? kNf4 : kFp4, at::kFloat);
  if (double_quant) {
    w.qabsmax = at::randint(256, {blocks}, at::kLong).to(at::kByte);
    w.absmax2 = at::rand({(blocks + 255) / 256}) + 0.5;
    w.code2 = std::get<0>(at::sort(at::rand({256}) * 2 - 1));
    w.offset = 0.3;
  } else {
    w.absmax = at::rand({blocks}) * 0.5 + 0.1;
  }
  return c;
}

at::Tensor dequantize_bnb4(const Bnb4Case& c) {
  const Bnb4Tensors& w = c.w;
  const int64_t numel = w.in * w.out;
  const at::Tensor block = at::floor_divide(at::arange(numel, at::kLong), w.blocksize);
  at::Tensor absmax;
  if (w.absmax.defined())
    absmax = w.absmax;
  else
    absmax = w.code2.index_select(0, w.qabsmax.to(at::kLong)) *
                 w.absmax2.index_select(0, at::floor_divide(at::arange(w.qabsmax.numel(), at::kLong), 256)) +
             w.offset;
  return (w.code.index_select(0, c.codes) * absmax.index_select(0, block)).view({w.out, w.in});
}

Bnb4Tensors to_gpu(const Bnb4Tensors& w) {
  Bnb4Tensors g = w;
  for (at::Tensor* t : {&g.packed, &g.code, &g.absmax, &g.qabsmax, &g.absmax2, &g.code2})
    if (t->defined()) *t = t->to(kGpu);
  return g;
}

// --- LLM.int8() ------------------------------------------------------------------------------
struct Int8Case {
  at::Tensor weight, scb;  // CPU
};

Int8Case make_int8(int64_t in, int64_t out) {
  return {at::randint(-127, 128, {out, in}, at::kLong).to(at::kChar), at::rand({out}) * 0.5 + 0.1};
}

at::Tensor dequantize_int8(const Int8Case& c) {
  return c.weight.to(at::kFloat) * c.scb.unsqueeze(1) / 127.0;
}

// bitsandbytes' algorithm step by step, in float64 for the products.
at::Tensor emulate_llm_int8(const at::Tensor& x_in, const Int8Case& c, double threshold) {
  const at::Tensor x = x_in.to(at::kCPU, at::kFloat);
  at::Tensor outlier = threshold > 0 ? x.abs() >= threshold : at::zeros_like(x, at::kBool);
  const at::Tensor cols = outlier.any(0);
  const at::Tensor inlier = x.masked_fill(outlier, 0);
  const at::Tensor rowmax = std::get<0>(inlier.abs().max(1));
  const at::Tensor scale = at::where(rowmax > 0, 127.0f / rowmax, at::zeros_like(rowmax));
  const at::Tensor xq = at::round(inlier * scale.unsqueeze(1)).masked_fill(cols.unsqueeze(0), 0);
  const at::Tensor cb = c.weight.to(at::kDouble);
  const at::Tensor int_part = at::matmul(xq.to(at::kDouble), cb.t()) *
                              rowmax.to(at::kDouble).unsqueeze(1) *
                              c.scb.to(at::kDouble).unsqueeze(0) / 16129.0;
  const at::Tensor fp_part = at::matmul((x * cols.unsqueeze(0)).to(at::kDouble),
                                        (cb * c.scb.to(at::kDouble).unsqueeze(1) / 127.0).t());
  return int_part + fp_part;
}

// Activations with a few planted outliers: columns 3 and 17 of rows 0 and (for M > 1) the last.
at::Tensor activations(int64_t m, int64_t in, at::ScalarType dtype, bool outliers) {
  at::Tensor x = at::randn({m, in});
  if (outliers) {
    x.index_put_({0, 3}, 9.0);
    x.index_put_({m - 1, 17}, -7.5);
  }
  return x.to(dtype);
}

class Kernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no GPU visible to libtorch: kernel tests skipped";
    at::manual_seed(1234);
  }
  c10::InferenceMode inference_;
};

const std::vector<int64_t> kBatches = {1, 3, 8, 16, 20, 64, 130};
// Both kernels behind a *_matmul at every batch, whichever one `automatic` would pick. The
// tensor-core path rounds the dequantized weight to x's dtype before multiplying (as the
// dequantize + cuBLAS path does), about 2^-9 relative per element for bfloat16: within the
// output tolerances, whose bound is the output's own rounding.
const std::vector<MatmulPath> kPaths = {MatmulPath::gemv, MatmulPath::tensor_core};
const char* path_name(MatmulPath p) { return p == MatmulPath::gemv ? " gemv" : " tensor_core"; }
const std::vector<at::ScalarType> kDtypes = {at::kHalf, at::kBFloat16};

}  // namespace

// AutoGPTQ's pack, spelled out word by word for 3 bits (32 codes in 3 words: codes 0-9 at bits
// 0-29, code 10 split over bits 30-31 and the next word's bit 0, and so on), is the same words
// as the test's bit-stream packer, so the references below really are GPTQ's layout.
TEST(KernelLayouts, ThreeBitStreamMatchesGptqPack) {
  at::manual_seed(7);
  const at::Tensor codes = at::randint(8, {32, 1}, at::kLong);
  const auto q = codes.accessor<int64_t, 2>();
  uint32_t w0 = 0, w1 = 0, w2 = 0;
  for (int j = 0; j < 10; ++j) w0 |= static_cast<uint32_t>(q[j][0]) << (3 * j);
  w0 |= static_cast<uint32_t>(q[10][0]) << 30;
  w1 |= (static_cast<uint32_t>(q[10][0]) >> 2) & 1u;
  for (int j = 0; j < 10; ++j) w1 |= static_cast<uint32_t>(q[11 + j][0]) << (3 * j + 1);
  w1 |= static_cast<uint32_t>(q[21][0]) << 31;
  w2 |= (static_cast<uint32_t>(q[21][0]) >> 1) & 3u;
  for (int j = 0; j < 10; ++j) w2 |= static_cast<uint32_t>(q[22 + j][0]) << (3 * j + 2);
  const at::Tensor packed = pack_stream(codes, 3);
  ASSERT_EQ(packed.size(0), 3);
  EXPECT_EQ(static_cast<uint32_t>(packed[0][0].item<int>()), w0);
  EXPECT_EQ(static_cast<uint32_t>(packed[1][0].item<int>()), w1);
  EXPECT_EQ(static_cast<uint32_t>(packed[2][0].item<int>()), w2);
  EXPECT_TRUE(at::equal(unpack_stream(packed, 32, 3), codes));
}

TEST_F(Kernels, IntGroupMatmulMatchesReferenceEveryBitWidthGroupAndOrder) {
  struct Shape { int64_t in, out; };
  for (const Shape shape : {Shape{800, 333}, Shape{2048, 256}})
    for (int bits : {2, 3, 4, 8})
      for (int64_t group : {int64_t{32}, int64_t{64}, int64_t{128}, shape.in})
        for (bool act_order : {false, true})
          for (at::ScalarType dtype : kDtypes) {
            const IntGroupCase w = make_int_group(shape.in, shape.out, bits, group, act_order, dtype);
            const at::Tensor wf = dequantize_int_group(w);
            for (bool with_g_idx : {true, false}) {
              if (act_order && !with_g_idx) continue;
              const IntGroupTensors g = to_gpu(w, with_g_idx);
              for (int64_t m : kBatches)
                for (MatmulPath path : kPaths) {
                  const at::Tensor x = activations(m, shape.in, dtype, false);
                  const at::Tensor y = int_group_matmul(x.to(kGpu), g, path);
                  ASSERT_EQ(y.scalar_type(), dtype);
                  EXPECT_LT(rel_err(y, reference_matmul(x, wf)), output_tolerance(dtype))
                      << "in " << shape.in << " out " << shape.out << " bits " << bits << " group "
                      << group << " act_order " << act_order << " g_idx " << with_g_idx << " M "
                      << m << " " << dtype << path_name(path);
                }
            }
          }
}

// Computed groups are a shift: a weight whose group size is neither a power of two nor the whole
// row must keep its g_idx, and is told so.
TEST_F(Kernels, IntGroupWithoutGIdxRefusesAGroupSizeItCannotShiftByName) {
  const IntGroupCase w = make_int_group(768, 64, 4, 96, false, at::kHalf);
  const at::Tensor x = activations(1, 768, at::kHalf, false).to(kGpu);
  EXPECT_LT(rel_err(int_group_matmul(x, to_gpu(w)), reference_matmul(x, dequantize_int_group(w))),
            output_tolerance(at::kHalf));
  try {
    int_group_matmul(x, to_gpu(w, false));
    ADD_FAILURE() << "a group size of 96 without g_idx was taken";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("give g_idx"), std::string::npos) << e.what();
  }
}

// The cluster split along `in` at other aims than the default (QSWEEP_INT_GROUP_BLOCKS_PER_SM):
// from one block a row of tiles to the portable cluster's eight, the row kernel (one row, no
// g_idx) and the generic GEMV give the reference's product; a value out of range is refused.
TEST_F(Kernels, IntGroupMatmulMatchesReferenceAtEveryClusterAimAndTheKnobIsChecked) {
  struct Shape { int64_t in, out; };
  for (const Shape shape : {Shape{800, 333}, Shape{4096, 256}})
    for (int bits : {3, 4})
      for (bool act_order : {false, true}) {
        const IntGroupCase w = make_int_group(shape.in, shape.out, bits, 128, act_order, at::kHalf);
        const IntGroupTensors g = to_gpu(w, act_order);
        const at::Tensor wf = dequantize_int_group(w);
        for (const char* aim : {"1", "7", "16"})
          for (int64_t m : {1, 4}) {
            setenv("QSWEEP_INT_GROUP_BLOCKS_PER_SM", aim, 1);
            const at::Tensor x = activations(m, shape.in, at::kHalf, false);
            EXPECT_LT(rel_err(int_group_matmul(x.to(kGpu), g, MatmulPath::gemv),
                              reference_matmul(x, wf)),
                      output_tolerance(at::kHalf))
                << "in " << shape.in << " bits " << bits << " act_order " << act_order
                << " aim " << aim << " M " << m;
          }
      }
  const IntGroupCase w = make_int_group(256, 64, 4, 128, false, at::kHalf);
  const at::Tensor x = activations(1, 256, at::kHalf, false).to(kGpu);
  for (const char* bad : {"0", "17", "four"}) {
    setenv("QSWEEP_INT_GROUP_BLOCKS_PER_SM", bad, 1);
    try {
      int_group_matmul(x, to_gpu(w, false), MatmulPath::gemv);
      ADD_FAILURE() << "QSWEEP_INT_GROUP_BLOCKS_PER_SM=" << bad << " was taken";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("QSWEEP_INT_GROUP_BLOCKS_PER_SM"), std::string::npos)
          << e.what();
    }
  }
  unsetenv("QSWEEP_INT_GROUP_BLOCKS_PER_SM");
}

TEST_F(Kernels, IntGroupDequantizeMatchesReference) {
  for (int bits : {2, 3, 4, 8})
    for (bool act_order : {false, true})
      for (at::ScalarType dtype : kDtypes) {
        const IntGroupCase w = make_int_group(800, 333, bits, 64, act_order, dtype);
        for (bool with_g_idx : {true, false}) {
          if (act_order && !with_g_idx) continue;
          const at::Tensor got = int_group_dequantize(to_gpu(w, with_g_idx));
          ASSERT_EQ(got.scalar_type(), dtype);
          EXPECT_LT(rel_err(got, dequantize_int_group(w)), dequant_tolerance(dtype))
              << "bits " << bits << " act_order " << act_order << " g_idx " << with_g_idx << " "
              << dtype;
        }
      }
}

TEST_F(Kernels, Bnb4MatmulMatchesReferenceNf4Fp4WithAndWithoutDoubleQuant) {
  struct Shape { int64_t in, out; };
  // 800: rows on 16-byte boundaries (the FMA GEMV); 777: rows starting mid-byte; 1088 and 2048:
  // whole 64-code chunks (the tensor-core GEMV), 333 rows leaving a warp's eight part empty.
  // Block size 96, which bitsandbytes never writes, finds its blocks by division, not a shift
  // (the tile kernel divides; the FMA GEMV hands it to the any-shape kernel).
  for (const Shape shape : {Shape{800, 333}, Shape{777, 333}, Shape{1088, 333}, Shape{2048, 256}})
    for (bool nf4 : {true, false})
      for (bool dq : {false, true})
        for (int64_t blocksize : {int64_t{64}, int64_t{128}, int64_t{96}})
          for (at::ScalarType dtype : kDtypes) {
            const Bnb4Case c = make_bnb4(shape.in, shape.out, nf4, dq, blocksize);
            const at::Tensor wf = dequantize_bnb4(c);
            const Bnb4Tensors g = to_gpu(c.w);
            for (int64_t m : kBatches)
              for (MatmulPath path : kPaths) {
                const at::Tensor x = activations(m, shape.in, dtype, false);
                const at::Tensor y = bnb4_matmul(x.to(kGpu), g, path);
                EXPECT_LT(rel_err(y, reference_matmul(x, wf)), output_tolerance(dtype))
                    << "in " << shape.in << " out " << shape.out << (nf4 ? " nf4" : " fp4")
                    << " dq " << dq << " blocksize " << blocksize << " M " << m << " " << dtype
                    << path_name(path);
              }
          }
}

// One row takes NF4's FMA GEMV or, with QSWEEP_BNB4_ONE_ROW=mma, the tensor-core GEMV: both
// within the reference's tolerance of it, and a value that is neither refused by name.
TEST_F(Kernels, Bnb4OneRowKernelsBothMatchTheReferenceAndTheKnobIsChecked) {
  const Bnb4Case c = make_bnb4(2048, 333, true, true, 64);
  const Bnb4Tensors g = to_gpu(c.w);
  const at::Tensor x = activations(1, 2048, at::kBFloat16, false);
  const at::Tensor want = reference_matmul(x, dequantize_bnb4(c));
  for (const char* kernel : {"mma", "fma"}) {
    setenv("QSWEEP_BNB4_ONE_ROW", kernel, 1);
    EXPECT_LT(rel_err(bnb4_matmul(x.to(kGpu), g, MatmulPath::gemv), want),
              output_tolerance(at::kBFloat16)) << kernel;
  }
  setenv("QSWEEP_BNB4_ONE_ROW", "tensor", 1);
  try {
    bnb4_matmul(x.to(kGpu), g, MatmulPath::gemv);
    ADD_FAILURE() << "QSWEEP_BNB4_ONE_ROW=tensor was taken";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("QSWEEP_BNB4_ONE_ROW"), std::string::npos) << e.what();
  }
  unsetenv("QSWEEP_BNB4_ONE_ROW");
}

TEST_F(Kernels, Bnb4DequantizeMatchesReference) {
  for (bool dq : {false, true})
    for (at::ScalarType dtype : kDtypes) {
      const Bnb4Case c = make_bnb4(777, 333, true, dq, 64);
      const at::Tensor got = bnb4_dequantize(to_gpu(c.w), dtype);
      ASSERT_EQ(got.scalar_type(), dtype);
      EXPECT_LT(rel_err(got, dequantize_bnb4(c)), dequant_tolerance(dtype)) << "dq " << dq;
    }
}

TEST_F(Kernels, Int8MatmulFollowsLlmInt8WithAndWithoutOutliers) {
  struct Shape { int64_t in, out; };
  // 4096 and 8192: rows long enough that two and four warps split each (the GEMV's kSplit).
  for (const Shape shape : {Shape{800, 333}, Shape{777, 333}, Shape{2048, 256}, Shape{4096, 40},
                            Shape{8192, 40}})
    for (double threshold : {0.0, 6.0})
      for (at::ScalarType dtype : kDtypes) {
        const Int8Case c = make_int8(shape.in, shape.out);
        const at::Tensor wf = dequantize_int8(c);
        const at::Tensor w = c.weight.to(kGpu), scb = c.scb.to(kGpu);
        for (int64_t m : kBatches)
          for (MatmulPath path : kPaths) {
            const at::Tensor x = activations(m, shape.in, dtype, threshold > 0);
            const at::Tensor y = int8_matmul(x.to(kGpu), w, scb, threshold, {}, path);
            const std::string where = "in " + std::to_string(shape.in) + " out " +
                                      std::to_string(shape.out) + " threshold " +
                                      std::to_string(threshold) + " M " + std::to_string(m) +
                                      path_name(path);
            EXPECT_LT(rel_err(y, emulate_llm_int8(x, c, threshold)), output_tolerance(dtype)) << where;
            EXPECT_LT(rel_err(y, reference_matmul(x, wf)), kInt8ActivationTolerance) << where;
          }
      }
}

// linear.cpp's LLM.int8 past the fused kernels' rows: x^ times the dense weight on cuBLAS.
TEST_F(Kernels, Int8ActivationsTimesDequantizedWeightFollowLlmInt8) {
  for (double threshold : {0.0, 6.0})
    for (at::ScalarType dtype : kDtypes)
      for (int64_t m : {1, 65, 300}) {
        const Int8Case c = make_int8(2048, 256);
        const at::Tensor x = activations(m, 2048, dtype, threshold > 0);
        const at::Tensor w = int8_dequantize(c.weight.to(kGpu), c.scb.to(kGpu), dtype);
        const at::Tensor y = at::matmul(int8_activations(x.to(kGpu), threshold), w.t());
        EXPECT_LT(rel_err(y, emulate_llm_int8(x, c, threshold)), output_tolerance(dtype))
            << "threshold " << threshold << " M " << m;
      }
}

TEST_F(Kernels, Int8ActivationsRefuseANegativeThresholdAndNon2DInputByName) {
  const at::Tensor x = at::randn({2, 64}).to(at::kHalf).to(kGpu);
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { int8_activations(x, -1.0); }, [&] { int8_activations(x.view({2, 8, 8}), 6.0); }}) {
    try {
      call();
      ADD_FAILURE() << "bad input accepted";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("int8_activations"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Kernels, Int8OutlierColumnsKeepFullPrecision) {
  // One huge activation: without the outlier path it would flatten the rest of its row to zero.
  const Int8Case c = make_int8(512, 64);
  at::Tensor x = at::randn({1, 512});
  x.index_put_({0, 5}, 500.0);
  for (MatmulPath path : kPaths) {
    const at::Tensor y = int8_matmul(x.to(at::kHalf).to(kGpu), c.weight.to(kGpu), c.scb.to(kGpu),
                                     6.0, {}, path);
    EXPECT_LT(rel_err(y, reference_matmul(x.to(at::kHalf), dequantize_int8(c))),
              kInt8ActivationTolerance)
        << path_name(path);
  }
}

TEST_F(Kernels, Int8DequantizeMatchesReference) {
  for (at::ScalarType dtype : kDtypes) {
    const Int8Case c = make_int8(777, 333);
    const at::Tensor got = int8_dequantize(c.weight.to(kGpu), c.scb.to(kGpu), dtype);
    EXPECT_LT(rel_err(got, dequantize_int8(c)), dequant_tolerance(dtype));
  }
}

// The dense GEMV against float32 x @ W^T at every batch it takes: rows of 8 pieces (one warp
// per row group), 256 and 1025 (warps splitting a row, a last round of pieces part-filled), an
// odd number of output rows, and a weight whose rows are strided (a view of a wider tensor).
TEST_F(Kernels, DenseGemvMatchesReferenceOnWholeAndStridedWeights) {
  for (at::ScalarType dtype : kDtypes)
    for (int64_t in : {int64_t{64}, int64_t{2048}, int64_t{8200}}) {
      const at::Tensor whole = at::randn({333, in}).to(dtype);
      const at::Tensor strided = at::randn({333, in + 8}).to(dtype).narrow(1, 0, in);
      for (const at::Tensor& w : {whole, strided})
        for (int64_t m = 1; m <= kDenseGemvMaxRows; ++m) {
          const at::Tensor x = activations(m, in, dtype, false);
          const at::Tensor wg = w.to(kGpu);
          ASSERT_TRUE(dense_gemv_supported(x.to(kGpu), wg)) << "in " << in << " M " << m;
          EXPECT_LT(rel_err(dense_gemv(x.to(kGpu), wg), reference_matmul(x, w)), output_tolerance(dtype))
              << "in " << in << " M " << m << " " << dtype << (w.is_contiguous() ? "" : " strided");
        }
    }
}

// The GEMVs' gate|up epilogue (gemv_io.h) is their product's halves through silu_mul, bit
// for bit: the same sums, rounded the same way. Every batch and path of each function is held to
// it, the ones without the epilogue (which take silu_mul themselves) too. Rows of 800 codes (one
// warp per row group; NF4 without whole 64-code chunks, so the FMA GEMV up to 8 rows) and 8192
// (four warps splitting a row; NF4's tensor-core GEMV); 333 outputs, a last block part-filled
// (and gate rows not in the fours NF4's tensor-core GEMV pairs, so silu_mul after it), and 332.
// Int-group weights with computed groups (one row: the row GEMV's own epilogue at 332) and with
// g_idx (the GEMV, then silu_mul).
TEST_F(Kernels, SiluGateUpOutputIsSiluMulOfTheProductBitForBit) {
  for (int64_t out : {int64_t{2 * 333}, int64_t{2 * 332}})
    for (at::ScalarType dtype : kDtypes)
      for (int64_t in : {int64_t{800}, int64_t{8192}}) {
        const at::Tensor dense = at::randn({out, in}).to(dtype).to(kGpu);
        const Bnb4Tensors nf4 = to_gpu(make_bnb4(in, out, true, true, 64).w);
        const Int8Case c = make_int8(in, out);
        const at::Tensor w8 = c.weight.to(kGpu), scb = c.scb.to(kGpu);
        const IntGroupCase ig = make_int_group(in, out, 4, 128, false, dtype);
        const IntGroupTensors rtn = to_gpu(ig, false), with_g_idx = to_gpu(ig);
        for (int64_t m : kBatches) {
          const at::Tensor x = activations(m, in, dtype, true).to(kGpu);
          const std::string where = " in " + std::to_string(in) + " out " + std::to_string(out) +
                                    " M " + std::to_string(m) + " " + c10::toString(dtype);
          auto expect_same = [&](const at::Tensor& got, const at::Tensor& product,
                                 const std::string& what) {
            ASSERT_EQ(got.sizes(), (std::vector<int64_t>{m, out / 2})) << what << where;
            EXPECT_TRUE(at::equal(got, silu_of_halves(product))) << what << where;
          };
          if (m <= kDenseGemvMaxRows)
            expect_same(dense_gemv(x, dense, GemvOutput::silu_gate_up), dense_gemv(x, dense),
                        "dense");
          for (MatmulPath path : kPaths) {
            expect_same(bnb4_matmul(x, nf4, path, GemvOutput::silu_gate_up), bnb4_matmul(x, nf4, path),
                        std::string("nf4") + path_name(path));
            expect_same(int8_matmul(x, w8, scb, 6.0, {}, path, GemvOutput::silu_gate_up),
                        int8_matmul(x, w8, scb, 6.0, {}, path), std::string("int8") + path_name(path));
            for (const IntGroupTensors* g : {&rtn, &with_g_idx})
              expect_same(int_group_matmul(x, *g, path, GemvOutput::silu_gate_up),
                          int_group_matmul(x, *g, path),
                          std::string("int4") + (g == &rtn ? "" : " g_idx") + path_name(path));
          }
        }
      }
}

// The GEMVs' norm prologue and residual epilogue (gemv_io.h) against the kernels they spare:
// the product of a normed input equals the product of add_rms_norm's output, and the residual
// add equals libtorch's `residual + product`, bit for bit, at every batch and path (past the
// prologue's sizes and paths, the fallback runs the very kernels compared against). Rows of
// 800 (one warp a row group, one piece per norm lane), 4,096 (two pieces) and 8,192 (past the
// prologue: add_rms_norm before it); 333 output pairs.
TEST_F(Kernels, NormedInputAndResidualAddAreTheKernelsTheySpareBitForBit) {
  const int64_t out = 2 * 333;
  const double eps = 1e-5;
  for (at::ScalarType dtype : kDtypes)
    for (int64_t in : {int64_t{800}, int64_t{4096}, int64_t{8192}}) {
      const at::Tensor dense = at::randn({out, in}).to(dtype).to(kGpu);
      const Bnb4Tensors nf4 = to_gpu(make_bnb4(in, out, true, true, 64).w);
      const Int8Case c = make_int8(in, out);
      const at::Tensor w8 = c.weight.to(kGpu), scb = c.scb.to(kGpu);
      const at::Tensor norm = (at::rand({in}) + 0.5).to(dtype).to(kGpu);
      const IntGroupTensors rtn = to_gpu(make_int_group(in, out, 4, 128, false, dtype), false);
      for (int64_t m : kBatches) {
        const at::Tensor x = (activations(m, in, dtype, true) * 3).to(kGpu);
        at::Tensor residual_rows = x.clone();
        const at::Tensor normed = add_rms_norm(residual_rows, {}, norm, eps);
        const std::string where = " in " + std::to_string(in) + " M " + std::to_string(m) + " " +
                                  c10::toString(dtype);
        const at::Tensor before = x.clone();
        const auto check = [&](const std::function<at::Tensor(const at::Tensor&, const GemvIo&)>& f,
                               const std::string& what) {
          for (GemvOutput output : {GemvOutput::product, GemvOutput::silu_gate_up})
            EXPECT_TRUE(at::equal(f(x, GemvIo::normed(norm, eps, output)), f(normed, output)))
                << what << " normed" << where;
          EXPECT_TRUE(at::equal(x, before)) << what << " changed its input" << where;
          const at::Tensor start = at::randn({m, out}).to(dtype).to(kGpu);
          const at::Tensor residual = start.clone();
          const at::Tensor got = f(x, GemvIo::added_to(residual));
          EXPECT_EQ(got.data_ptr(), residual.data_ptr()) << what << where;
          EXPECT_TRUE(at::equal(residual, start + f(x, {}))) << what << " residual add" << where;
        };
        if (m <= kDenseGemvMaxRows)
          check([&](const at::Tensor& v, const GemvIo& io) { return dense_gemv(v, dense, io); },
                "dense");
        for (MatmulPath path : kPaths) {
          check([&](const at::Tensor& v, const GemvIo& io) { return bnb4_matmul(v, nf4, path, io); },
                std::string("nf4") + path_name(path));
          check([&](const at::Tensor& v, const GemvIo& io) {
            return int8_matmul(v, w8, scb, 6.0, {}, path, io);
          }, std::string("int8") + path_name(path));
          check([&](const at::Tensor& v, const GemvIo& io) {
            return int_group_matmul(v, rtn, path, io);
          }, std::string("int4") + path_name(path));
        }
      }
    }
}

TEST_F(Kernels, GemvIoRefusesANormOrResidualItCannotTakeByName) {
  const at::Tensor w = at::randn({16, 64}).to(at::kHalf).to(kGpu);
  const at::Tensor x = at::randn({1, 64}).to(at::kHalf).to(kGpu);
  const auto refused = [&](const GemvIo& io, const std::string& says) {
    try {
      dense_gemv(x, w, io);
      ADD_FAILURE() << "dense_gemv took an io that should say: " << says;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused(GemvIo::normed(at::ones({64}, x.options().dtype(at::kFloat)), 1e-5), "norm weight");
  refused(GemvIo::normed(at::ones({32}, x.options()), 1e-5), "norm weight");
  refused(GemvIo::added_to(at::zeros({1, 15}, x.options())), "residual");
  GemvIo both = GemvIo::added_to(at::zeros({1, 8}, x.options()));
  both.output = GemvOutput::silu_gate_up;
  refused(both, "plain product");
}

TEST_F(Kernels, DenseGemvRefusesMoreRowsThanItTakesByName) {
  const at::Tensor w = at::randn({16, 64}).to(at::kHalf).to(kGpu);
  const at::Tensor x = at::randn({kDenseGemvMaxRows + 1, 64}).to(at::kHalf).to(kGpu);
  EXPECT_FALSE(dense_gemv_supported(x, w));
  try {
    dense_gemv(x, w);
    FAIL() << "dense_gemv took " << x.size(0) << " rows";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense_gemv"), std::string::npos) << e.what();
  }
}

TEST_F(Kernels, WorkspaceTooSmallIsRejectedByName) {
  const Int8Case c = make_int8(64, 8);
  const at::Tensor x = at::randn({2, 64}).to(at::kHalf).to(kGpu);
  const at::Tensor small = at::empty({8}, at::TensorOptions().dtype(at::kByte).device(kGpu));
  try {
    int8_matmul(x, c.weight.to(kGpu), c.scb.to(kGpu), 6.0, small);
    FAIL() << "a too-small workspace was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("workspace"), std::string::npos) << e.what();
  }
}

// Decode replays these calls as one CUDA graph: capture must succeed (no sync, no allocation
// outside the graph's pool) and the replay must give the eager results bit for bit.
TEST_F(Kernels, DecodeCallsReplayAsOneCudaGraph) {
  const int64_t m = 4, in = 1024, out = 512;
  const at::Tensor x = activations(m, in, at::kBFloat16, true).to(kGpu);
  const IntGroupTensors ig = to_gpu(make_int_group(in, out, 4, 128, false, at::kBFloat16), false);
  const Bnb4Tensors nf4 = to_gpu(make_bnb4(in, out, true, true, 64).w);
  const Int8Case i8 = make_int8(in, out);
  const at::Tensor w8 = i8.weight.to(kGpu), scb = i8.scb.to(kGpu);
  const at::Tensor ws = at::empty({int8_workspace_bytes(m, in)}, x.options().dtype(at::kByte));
  auto step = [&] {
    return std::vector<at::Tensor>{
        int_group_matmul(x, ig, MatmulPath::gemv), int_group_matmul(x.narrow(0, 0, 1), ig),
        int_group_matmul(x, ig, MatmulPath::tensor_core),
        bnb4_matmul(x, nf4, MatmulPath::gemv), bnb4_matmul(x, nf4, MatmulPath::tensor_core),
        int8_matmul(x, w8, scb, 6.0, ws, MatmulPath::gemv),
        int8_matmul(x, w8, scb, 6.0, ws, MatmulPath::tensor_core), int8_activations(x, 6.0)};
  };
  const std::vector<at::Tensor> eager = step();
  std::vector<at::Tensor> captured;
  at::cuda::CUDAGraph graph;
  {
    const c10::cuda::CUDAStreamGuard guard(c10::cuda::getStreamFromPool());
    graph.capture_begin();
    captured = step();
    graph.capture_end();
  }
  graph.replay();
  at::cuda::getCurrentCUDAStream().synchronize();
  for (size_t i = 0; i < eager.size(); ++i) EXPECT_TRUE(at::equal(captured[i], eager[i])) << i;
}
