// The decode step's own kernels (qsweep/kernels/decode_kernels.h) against the libtorch operations
// they replace, on shapes that take each of their code paths. The engine tests (test_model_gpu)
// check them again inside whole decode steps. Labelled "gpu"; skipped, visibly, without a GPU.
#include "qsweep/kernels/decode_kernels.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_helpers.h"

using namespace qsweep;

namespace {

// RMSNorm rounds its normalised value and its product once each, as libtorch does; the kernels
// sum the squares in another order, which may move a rounding by one unit: 2^-8 relative in
// bfloat16, 2^-11 in float16, float32 far below.
double norm_tolerance(at::ScalarType t) {
  return t == at::kBFloat16 ? 1e-2 : t == at::kHalf ? 2e-3 : 1e-5;
}

const std::vector<at::ScalarType> kDtypes = {at::kFloat, at::kHalf, at::kBFloat16};

class DecodeKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no GPU visible to libtorch: decode kernel tests skipped";
    at::manual_seed(99);
  }
  c10::InferenceMode inference_;
};

}  // namespace

// hidden 2048 and 4096 take the register kernel (one and two 16-byte pieces per thread in
// 16-bit types), 1000 and 9000 the element-wise one (not a whole number of pieces; past the
// register kernel's rows).
TEST_F(DecodeKernels, AddRmsNormIsTheResidualAddThenTransformersRmsNorm) {
  const double eps = 1e-5;
  for (at::ScalarType dtype : kDtypes)
    for (int64_t hidden : {2048, 4096, 1000, 9000})
      for (bool with_delta : {true, false}) {
        const auto on = at::TensorOptions().device(kGpu).dtype(dtype);
        at::Tensor residual = at::randn({3, hidden}, on);
        const at::Tensor delta = with_delta ? at::randn({3, hidden}, on) : at::Tensor();
        const at::Tensor weight = at::rand({hidden}, on) + 0.5;
        const at::Tensor h = with_delta ? residual + delta : residual.clone();
        const at::Tensor hf = h.to(at::kFloat);
        const at::Tensor expected =
            weight * (hf * at::rsqrt(hf.pow(2).mean(-1, true) + eps)).to(dtype);
        const at::Tensor out = cuda::add_rms_norm(residual, delta, weight, eps);
        const std::string where = std::string(c10::toString(dtype)) + " hidden " +
                                  std::to_string(hidden) + (with_delta ? " with delta" : "");
        EXPECT_TRUE(at::equal(residual, h)) << where;
        EXPECT_LT(rel_err(out, expected), norm_tolerance(dtype)) << where;
      }
}

// Rows of a Llama-3 vocabulary (one chunk per block would be 63 chunks), a short row (one chunk)
// and a decode batch; ties go to the first index and a NaN wins, as in at::argmax.
TEST_F(DecodeKernels, ArgmaxLastDimPicksWhatAtArgmaxPicks) {
  struct Shape { int64_t rows, cols; };
  for (at::ScalarType dtype : kDtypes)
    for (const Shape shape : {Shape{1, 128256}, Shape{3, 1000}, Shape{256, 5000}}) {
      at::Tensor logits = at::randn({shape.rows, shape.cols}).to(dtype);
      logits.index_put_({0, shape.cols - 5}, 40.0);  // a tie with a later index: the first wins
      logits.index_put_({0, shape.cols / 3}, 40.0);
      if (shape.rows > 1) {
        logits.index_put_({1, 7}, 40.0);
        logits.index_put_({1, shape.cols - 1}, NAN);
      }
      if (shape.rows > 2) logits[2].fill_(-INFINITY);  // every value equal: index 0
      const at::Tensor expected = logits.to(at::kFloat).argmax(-1, /*keepdim=*/true);
      at::Tensor out = at::full({shape.rows, 1}, -1, at::TensorOptions().device(kGpu).dtype(at::kLong));
      cuda::argmax_last_dim(logits.to(kGpu), out);
      EXPECT_TRUE(at::equal(out.cpu(), expected))
          << c10::toString(dtype) << " rows " << shape.rows << " cols " << shape.cols;
      EXPECT_EQ(out[0].item<int64_t>(), shape.cols / 3);
    }
}

TEST_F(DecodeKernels, ArgmaxLastDimRefusesAnOutOfTheWrongShape) {
  const at::Tensor logits = at::randn({4, 100}, at::TensorOptions().device(kGpu));
  at::Tensor out = at::empty({3}, logits.options().dtype(at::kLong));
  EXPECT_THROW(cuda::argmax_last_dim(logits, out), c10::Error);
}

namespace {

// What decode_attention computes, with libtorch in float32: each row's query heads over its kv
// head's filled, unmasked slots [0, slot].
at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k_cache,
                               const at::Tensor& v_cache, const at::Tensor& key_mask,
                               const std::vector<int64_t>& slots, double scale) {
  const int64_t group = q.size(1) / k_cache.size(1);
  std::vector<at::Tensor> rows;
  for (size_t b = 0; b < slots.size(); ++b) {
    const int64_t n = slots[b] + 1;
    const auto filled = at::indexing::Slice(0, n);
    const at::Tensor k = k_cache[b].index({at::indexing::Slice(), filled}).to(at::kFloat);
    const at::Tensor v = v_cache[b].index({at::indexing::Slice(), filled}).to(at::kFloat);
    const at::Tensor scores =
        at::matmul(q[b].to(at::kFloat).unsqueeze(1), k.repeat_interleave(group, 0).transpose(1, 2)) *
        scale;  // [heads, 1, n]
    const at::Tensor masked = scores.masked_fill(key_mask[b].slice(0, 0, n).logical_not(), -INFINITY);
    rows.push_back(at::matmul(at::softmax(masked, -1), v.repeat_interleave(group, 0)).reshape({-1}));
  }
  return at::stack(rows);
}

}  // namespace

// Batches of 1 and 3 rows split each row's slots over several blocks and merge them (few (row,
// kv head) pairs for the GPU); 96 rows on 8 kv heads run in one pass. Groups of 1, 2, 4, 6, 8.
// A cache of 2500 slots needs three runs for shared memory alone. Rows end at different slots,
// and left padding leaves masked slots at the start of a row (row 1's first run, of 16 or more
// slots, entirely masked).
TEST_F(DecodeKernels, DecodeAttentionIsSoftmaxOverTheFilledSlots) {
  struct Shape { int64_t heads, kv_heads, dim, capacity; std::vector<int64_t> slots; };
  const std::vector<Shape> shapes = {
      {32, 8, 128, 300, {170}}, {32, 4, 128, 300, {0}}, {8, 8, 64, 64, {63, 40, 2}},
      {24, 4, 32, 2500, {2499, 1200, 16}}, {16, 8, 64, 130, std::vector<int64_t>(96, 129)}};
  for (at::ScalarType dtype : kDtypes)
    for (const Shape& s : shapes) {
      const int64_t rows = static_cast<int64_t>(s.slots.size());
      const auto on = at::TensorOptions().device(kGpu).dtype(dtype);
      const at::Tensor q = at::randn({rows, s.heads, s.dim}, on);
      const at::Tensor k = at::randn({rows, s.kv_heads, s.capacity, s.dim}, on);
      const at::Tensor v = at::randn({rows, s.kv_heads, s.capacity, s.dim}, on);
      at::Tensor mask = at::ones({rows, s.capacity}, on.dtype(at::kBool));
      if (rows > 1) mask[1].slice(0, 0, std::min<int64_t>(s.slots[1], 40)).fill_(false);
      const at::Tensor slot = at::tensor(s.slots, at::kLong).to(kGpu);
      const double scale = 1.0 / std::sqrt(static_cast<double>(s.dim));
      const at::Tensor expected = attention_reference(q, k, v, mask, s.slots, scale);
      // float32 differs only in summation order; 16-bit types round the output once.
      const double tolerance = dtype == at::kFloat ? 1e-5 : dtype == at::kHalf ? 2e-3 : 1e-2;
      for (int64_t splits : {0, 1, 7}) {  // chosen here, one pass, more runs than some rows fill
        const at::Tensor out = cuda::decode_attention(q, k, v, mask, slot, scale, splits);
        EXPECT_LT(rel_err(out, expected), tolerance)
            << c10::toString(dtype) << " heads " << s.heads << "/" << s.kv_heads << " dim "
            << s.dim << " capacity " << s.capacity << " rows " << rows << " splits " << splits;
      }
    }
}

// A negative block count is refused by name, before any launch.
TEST_F(DecodeKernels, DecodeAttentionRefusesNegativeSplitsByName) {
  const auto on = at::TensorOptions().device(kGpu).dtype(at::kBFloat16);
  const at::Tensor q = at::randn({1, 8, 64}, on);
  const at::Tensor k = at::randn({1, 2, 16, 64}, on), v = at::randn({1, 2, 16, 64}, on);
  const at::Tensor mask = at::ones({1, 16}, on.dtype(at::kBool));
  const at::Tensor slot = at::zeros({1}, on.dtype(at::kLong));
  try {
    cuda::decode_attention(q, k, v, mask, slot, 0.125, -1);
    FAIL() << "decode_attention took splits = -1";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("decode_attention: splits"), std::string::npos) << e.what();
  }
}
