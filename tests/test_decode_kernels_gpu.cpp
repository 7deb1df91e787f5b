// The decode step's own kernels (qsweep/kernels/decode_kernels.h) against the libtorch operations
// they replace, on shapes that take each of their code paths. The engine tests (test_model_gpu)
// check them again inside whole decode steps. Labelled "gpu"; skipped, visibly, without a GPU.
#include "qsweep/kernels/decode_kernels.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
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

// int64 [rows, 1] on the GPU: a decode state's tokens or positions.
at::Tensor rows_of(const std::vector<int64_t>& values) {
  return at::tensor(values, at::kLong).to(kGpu).view({-1, 1});
}

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

// decode_inputs against the operations it replaces: the embedding rows, add_rms_norm of them
// (bit for bit: the same row code), and the RoPE tables as ops::rope_tables builds them (a
// float32 angle, libtorch's cos and sin, rounded to the dtype). Hidden 2048 takes the register
// path, 1000 the two-pass one; head_dim 64 and 128; positions past 2^24 lose precision in the
// float32 angle exactly as rope_tables does.
TEST_F(DecodeKernels, DecodeInputsAreTheEmbeddingItsNormAndTheRopeTables) {
  const double eps = 1e-5;
  for (at::ScalarType dtype : kDtypes)
    for (int64_t hidden : {2048, 1000})
      for (int64_t dim : {64, 128}) {
        const auto on = at::TensorOptions().device(kGpu).dtype(dtype);
        const at::Tensor embed = at::randn({500, hidden}, on);
        const at::Tensor weight = at::rand({hidden}, on) + 0.5;
        const at::Tensor inv_freq =
            1.0 / at::pow(500000.0, at::arange(0, dim, 2, on.dtype(at::kFloat)) / dim);
        const at::Tensor tokens = rows_of({7, 0, 499, 7});
        const at::Tensor positions = rows_of({0, 1, 4000, (1 << 24) + 3});
        const cuda::DecodeInputs in =
            cuda::decode_inputs(embed, tokens, positions, inv_freq, weight, eps);
        const std::string where = std::string(c10::toString(dtype)) + " hidden " +
                                  std::to_string(hidden) + " head_dim " + std::to_string(dim);
        at::Tensor x = embed.index_select(0, tokens.view({-1}));
        EXPECT_TRUE(at::equal(in.x, x)) << where;
        EXPECT_TRUE(at::equal(in.h, cuda::add_rms_norm(x, {}, weight, eps))) << where;
        const at::Tensor freqs = positions.to(at::kFloat) * inv_freq;  // [4, dim / 2]
        const at::Tensor angles = at::cat({freqs, freqs}, -1);
        EXPECT_TRUE(at::equal(in.cos, angles.cos().to(dtype))) << where;
        EXPECT_TRUE(at::equal(in.sin, angles.sin().to(dtype))) << where;
      }
}

// Rows of a Llama-3 vocabulary (one chunk per block would be 63 chunks), a short row (one chunk)
// and a decode batch; ties go to the first index and a NaN wins, as in at::argmax.
// RoPE with the cache write, for a prefill of T tokens a row (rows of one stacked q|k|v
// product) and for decode (one token a row, at each row's own slot), against the libtorch
// operations the engine's unfused path runs: q * cos + rotate_half(q) * sin, bit for bit, with
// the keys and values in the cache where they belong and nothing written elsewhere.
TEST_F(DecodeKernels, RopeAndCacheWriteAreLibtorchsRopeAndTheCacheCopy) {
  const int64_t b = 3, t = 5, heads = 4, kv = 2, d = 64, capacity = 16, start = 4;
  const auto rotate_half = [](const at::Tensor& x) {
    const int64_t half = x.size(-1) / 2;
    return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  };
  const auto rope = [&](const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    return x * cos + rotate_half(x) * sin;
  };
  for (at::ScalarType dtype : kDtypes) {
    const std::string where = c10::toString(dtype);
    const auto on = at::TensorOptions().device(kGpu).dtype(dtype);
    const at::Tensor qkv = at::randn({b, t, (heads + 2 * kv) * d}, on);
    const at::Tensor q = qkv.narrow(2, 0, heads * d), k = qkv.narrow(2, heads * d, kv * d),
                     v = qkv.narrow(2, (heads + kv) * d, kv * d);
    const at::Tensor cos = at::randn({b, 1, t, d}, on), sin = at::randn({b, 1, t, d}, on);
    const auto heads_of = [&](const at::Tensor& x, int64_t n) {
      return x.reshape({b, t, n, d}).transpose(1, 2);
    };
    const auto rows = [&](const at::Tensor& x) { return x.reshape({b * t, x.size(-1)}); };
    at::Tensor k_cache = at::zeros({b, kv, capacity, d}, on), v_cache = at::zeros_like(k_cache);
    const at::Tensor got = cuda::rope_prefill_and_cache_write(
        rows(q), rows(k), rows(v), cos.reshape({b * t, d}), sin.reshape({b * t, d}), k_cache,
        v_cache, start);
    EXPECT_TRUE(at::equal(got, rope(heads_of(q, heads), cos, sin))) << where;
    EXPECT_TRUE(at::equal(k_cache.narrow(2, start, t), rope(heads_of(k, kv), cos, sin))) << where;
    EXPECT_TRUE(at::equal(v_cache.narrow(2, start, t), heads_of(v, kv))) << where;
    for (const at::Tensor& outside : {k_cache.narrow(2, 0, start), v_cache.narrow(2, 0, start),
                                      k_cache.narrow(2, start + t, capacity - start - t)})
      EXPECT_EQ(outside.count_nonzero().item<int64_t>(), 0) << where;

    // Decode: token 0 of each row, each row at its own slot, the key mask set there.
    at::Tensor key_mask = at::zeros({b, capacity}, on.dtype(at::kBool));
    const at::Tensor slot = at::tensor(std::vector<int64_t>{2, 9, 15}, at::kLong).to(kGpu);
    const at::Tensor q1 = q.select(1, 0), k1 = k.select(1, 0), v1 = v.select(1, 0);
    const at::Tensor c1 = cos.select(2, 0).squeeze(1), s1 = sin.select(2, 0).squeeze(1);
    const at::Tensor got1 = cuda::rope_and_cache_write(q1, k1, v1, c1.contiguous(),
                                                       s1.contiguous(), k_cache, v_cache,
                                                       key_mask, slot);
    EXPECT_TRUE(at::equal(got1, rope(q1.reshape({b, heads, d}), c1.unsqueeze(1), s1.unsqueeze(1))))
        << where;
    for (int64_t r = 0; r < b; ++r) {
      const int64_t at_slot = std::vector<int64_t>{2, 9, 15}[r];
      EXPECT_TRUE(at::equal(k_cache[r].select(1, at_slot),
                            rope(k1[r].reshape({kv, d}), c1[r], s1[r])))
          << where << " row " << r;
      EXPECT_TRUE(at::equal(v_cache[r].select(1, at_slot), v1[r].reshape({kv, d}))) << where;
    }
    EXPECT_EQ(key_mask.sum().item<int64_t>(), b) << where;
  }
  at::Tensor k_cache = at::zeros({1, 2, 8, 64}, at::TensorOptions().device(kGpu));
  at::Tensor v_cache = at::zeros_like(k_cache);
  const at::Tensor x = at::zeros({6, 4 * 64}, k_cache.options());
  const at::Tensor kx = at::zeros({6, 2 * 64}, k_cache.options());
  const at::Tensor table = at::zeros({6, 64}, k_cache.options());
  try {
    cuda::rope_prefill_and_cache_write(x, kx, kx, table, table, k_cache, v_cache, 3);
    ADD_FAILURE() << "6 tokens from slot 3 were written into a cache of 8 slots";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope_prefill_and_cache_write"), std::string::npos)
        << e.what();
  }
}

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

// Given a decode state's positions and slot, the same kernel advances each row's by one.
TEST_F(DecodeKernels, ArgmaxLastDimAdvancesPositionsAndSlotWhereGiven) {
  const auto on = at::TensorOptions().device(kGpu);
  const at::Tensor logits = at::randn({3, 700}, on);
  at::Tensor out = at::empty({3, 1}, on.dtype(at::kLong));
  const at::Tensor positions = rows_of({4, 9, 0});
  const at::Tensor slot = rows_of({10, 2, 7}).view({-1});
  cuda::argmax_last_dim(logits, out, positions, slot);
  EXPECT_TRUE(at::equal(out, logits.argmax(-1, /*keepdim=*/true)));
  EXPECT_TRUE(at::equal(positions, rows_of({5, 10, 1})));
  EXPECT_TRUE(at::equal(slot, rows_of({11, 3, 8}).view({-1})));
  at::Tensor wrong = at::zeros({2}, on.dtype(at::kLong));
  EXPECT_THROW(cuda::argmax_last_dim(logits, out, wrong), c10::Error);
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
      // The counts a cache would hold, reused by every call: each call must leave them at 0.
      const at::Tensor arrivals = at::zeros({rows * s.kv_heads}, on.dtype(at::kInt));
      for (int64_t splits : {0, 1, 7}) {  // chosen here, one pass, more runs than some rows fill
        for (const at::Tensor& counts : {at::Tensor(), arrivals, arrivals}) {
          const at::Tensor out = cuda::decode_attention(q, k, v, mask, slot, scale, splits, counts);
          EXPECT_LT(rel_err(out, expected), tolerance)
              << c10::toString(dtype) << " heads " << s.heads << "/" << s.kv_heads << " dim "
              << s.dim << " capacity " << s.capacity << " rows " << rows << " splits " << splits
              << (counts.defined() ? " with the cache's counts" : "");
        }
        EXPECT_EQ(arrivals.count_nonzero().item<int64_t>(), 0) << "splits " << splits;
      }
    }
}

// QSWEEP_ATTENTION_MIN_RUN changes how the chosen split plans its runs, not the result; a value
// that is not a slot count in range is refused by name.
TEST_F(DecodeKernels, AttentionMinRunKnobKeepsTheResultAndRefusesBadValues) {
  const auto on = at::TensorOptions().device(kGpu).dtype(at::kBFloat16);
  const at::Tensor q = at::randn({1, 32, 128}, on);
  const at::Tensor k = at::randn({1, 8, 600, 128}, on), v = at::randn({1, 8, 600, 128}, on);
  const at::Tensor mask = at::ones({1, 600}, on.dtype(at::kBool));
  const at::Tensor slot = at::full({1}, 599, on.dtype(at::kLong));
  const at::Tensor expected = attention_reference(q, k, v, mask, {599}, 0.088);
  for (const char* run : {"16", "256", "1024"}) {
    setenv("QSWEEP_ATTENTION_MIN_RUN", run, 1);
    EXPECT_LT(rel_err(cuda::decode_attention(q, k, v, mask, slot, 0.088), expected), 1e-2)
        << "QSWEEP_ATTENTION_MIN_RUN=" << run;
  }
  for (const char* bad : {"8", "2000", "many", ""}) {
    setenv("QSWEEP_ATTENTION_MIN_RUN", bad, 1);
    try {
      cuda::decode_attention(q, k, v, mask, slot, 0.088);
      ADD_FAILURE() << "QSWEEP_ATTENTION_MIN_RUN='" << bad << "' was taken";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("QSWEEP_ATTENTION_MIN_RUN"), std::string::npos)
          << e.what();
    }
  }
  unsetenv("QSWEEP_ATTENTION_MIN_RUN");
}

// Counts of the wrong type or too few for the batch's (row, kv head) pairs are refused by name.
TEST_F(DecodeKernels, DecodeAttentionRefusesBadArrivalCountsByName) {
  const auto on = at::TensorOptions().device(kGpu).dtype(at::kBFloat16);
  const at::Tensor q = at::randn({2, 8, 64}, on);
  const at::Tensor k = at::randn({2, 2, 64, 64}, on), v = at::randn({2, 2, 64, 64}, on);
  const at::Tensor mask = at::ones({2, 64}, on.dtype(at::kBool));
  const at::Tensor slot = at::full({2}, 63, on.dtype(at::kLong));
  for (const at::Tensor& bad :
       {at::zeros({3}, on.dtype(at::kInt)), at::zeros({4}, on.dtype(at::kLong))}) {
    try {
      cuda::decode_attention(q, k, v, mask, slot, 0.125, 4, bad);
      FAIL() << "decode_attention took arrivals " << bad.toString() << " of " << bad.numel();
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("decode_attention: arrivals"), std::string::npos)
          << e.what();
    }
  }
}

// silu_mul rounds as at::silu(gate) * up does, on the strided halves of one gate|up product:
// within one unit in the last place (2^-10 relative in float16, 2^-7 in bfloat16), which is
// what a different last bit of the exponential could move.
TEST_F(DecodeKernels, SiluMulRoundsAsLibtorchsSiluTimesUp) {
  for (at::ScalarType dtype : kDtypes) {
    const auto on = at::TensorOptions().device(kGpu).dtype(dtype);
    const at::Tensor both = at::randn({5, 2000}, on) * 4;
    const at::Tensor gate = both.narrow(1, 0, 1000), up = both.narrow(1, 1000, 1000);
    const at::Tensor want = (at::silu(gate) * up).to(at::kFloat);
    const at::Tensor got = cuda::silu_mul(gate, up).to(at::kFloat);
    const double ulp = dtype == at::kHalf ? 1.0 / 1024 : dtype == at::kBFloat16 ? 1.0 / 128 : 1e-6;
    EXPECT_LE(((got - want).abs() / want.abs().clamp_min(1e-3)).max().item<double>(), ulp)
        << c10::toString(dtype);
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
