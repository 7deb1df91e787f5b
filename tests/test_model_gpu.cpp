// The engine on a GPU against the CPU float32 reference. Labelled "gpu"; skipped, visibly,
// where libtorch sees no GPU.
#include "qsweep/model/engine.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/quant/quantize_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <optional>

#include "gpu_test_helpers.h"
#include "test_helpers.h"

using namespace qsweep;

namespace {

// Named tolerances: fp32 on the GPU differs from the CPU only by summation order. Half types
// are judged by the greedy choice, which is what evaluation consumes, wherever the float32
// reference is not a near tie (top-1 ahead of top-2 by kClearMargin of the logit scale): an
// 8-bit mantissa may flip near ties, but a flip of a clear choice is a bug.
constexpr double kFp32RelativeTolerance = 1e-4;
constexpr double kClearMargin = 0.1;
constexpr double kHalfClearTop1Agreement = 0.99;

const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("gpu-model");
    ModelConfig c = model_preset("small", 4096);
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    write_random_model(c, RandomInit{11, 0.2, at::kFloat}, d);
    return d;
  }();
  return dir;
}

at::Tensor all_logits(const Model& m, const at::Tensor& ids) {
  const int64_t b = ids.size(0), t = ids.size(1);
  const auto on = at::TensorOptions().device(m.device);
  KVCache cache = make_kv_cache(m, b, t);
  return forward(m, ids.to(m.device), at::ones({b, t}, on.dtype(at::kBool)),
                 at::arange(t, on.dtype(at::kLong)).expand({b, t}), cache, false)
      .to(at::kCPU, at::kFloat);
}

}  // namespace

class GpuEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no GPU visible to libtorch: GPU engine tests skipped";
  }
};

TEST_F(GpuEngine, Fp32MatchesCpuReference) {
  c10::InferenceMode guard;
  const at::Tensor ids = at::randint(4096, {3, 40}, at::kLong);
  const at::Tensor cpu = all_logits(load_model(model_dir(), {DType::fp32, at::kCPU}), ids);
  const at::Tensor gpu = all_logits(load_model(model_dir(), {DType::fp32, at::Device("cuda:0")}), ids);
  const double scale = cpu.abs().max().item<double>();
  EXPECT_LT((gpu - cpu).abs().max().item<double>() / scale, kFp32RelativeTolerance);
}

// Prefill with q|k|v and gate|up stacked: the fused SiLU * up reads gate and up as strided
// halves of one [batch, T, 2 x intermediate] product.
TEST_F(GpuEngine, Fp32PrefillOverStackedProjectionsMatchesCpuReference) {
  c10::InferenceMode guard;
  const at::Tensor ids = at::randint(4096, {3, 40}, at::kLong);
  const at::Tensor cpu = all_logits(load_model(model_dir(), {DType::fp32, at::kCPU}), ids);
  Model stacked = load_model(model_dir(), {DType::fp32, at::Device("cuda:0")});
  stack_projections(stacked);
  ASSERT_TRUE(stacked.layers.front().gate_up);
  const at::Tensor gpu = all_logits(stacked, ids);
  const double scale = cpu.abs().max().item<double>();
  EXPECT_LT((gpu - cpu).abs().max().item<double>() / scale, kFp32RelativeTolerance);
}

TEST_F(GpuEngine, HalfTypesAgreeOnGreedyChoice) {
  c10::InferenceMode guard;
  const at::Tensor ids = at::randint(4096, {6, 64}, at::kLong);
  const at::Tensor reference = all_logits(load_model(model_dir(), {DType::fp32, at::kCPU}), ids);
  for (DType dtype : {DType::fp16, DType::bf16}) {
    const at::Tensor got = all_logits(load_model(model_dir(), {dtype, at::Device("cuda:0")}), ids);
    const at::Tensor top2 = std::get<0>(reference.topk(2, -1));
    const double scale = reference.abs().max().item<double>();
    const at::Tensor clear = (top2.select(-1, 0) - top2.select(-1, 1)) > kClearMargin * scale;
    ASSERT_GT(clear.sum().item<int64_t>(), 20) << "too few clear choices to judge";
    const at::Tensor same = got.argmax(-1) == reference.argmax(-1);
    const double agree = same.masked_select(clear).to(at::kFloat).mean().item<double>();
    EXPECT_GE(agree, kHalfClearTop1Agreement) << dtype_name(dtype);
  }
}

namespace {

// Sets an environment variable for a scope (a null value unsets it), and unsets it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (value) setenv(name, value, 1); else unsetenv(name);
  }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

// Greedy tokens of 40 decode steps of a batch of b >= 3 rows after a prompt batch whose row 1
// is left-padded and whose row 2 decodes at another slot (continuous batching), and the last
// layer's key cache after them; eager steps or replays of the CUDA graph Decoder captures. With
// `forced`, step s is fed token (s * 13) % 4096 instead of the greedy one, so that paths whose
// choices differ still see the same inputs.
struct DecodeOutcome {
  at::Tensor tokens, last_keys;
};

DecodeOutcome decode_with(const Model& m, int64_t b, bool graph, bool forced) {
  const int64_t t = 20, steps = 40;
  const auto on = at::TensorOptions().device(m.device).dtype(at::kLong);
  KVCache cache = make_kv_cache(m, b, t + steps + 5);
  const at::Tensor prompt = (at::arange(b * t, on).view({b, t}) * 7) % 4096;
  at::Tensor real = at::ones({b, t}, on.dtype(at::kBool));
  if (b > 1) real[1].narrow(0, 0, 6).fill_(false);  // row 1 is left-padded: its pad slots stay masked
  const at::Tensor logits = forward(m, prompt, real, at::arange(t, on).expand({b, t}), cache, true);
  DecodeState state{logits.argmax(-1), at::full({b, 1}, t, on), at::full({b}, t, on)};
  if (b > 2) state.slot[2].fill_(t + 3);  // rows need not share a slot (continuous batching)
  std::vector<at::Tensor> tokens;
  std::optional<Decoder> decoder;
  if (graph) decoder.emplace(m, cache, state);
  for (int s = 0; s < steps; ++s) {
    if (forced) state.tokens.fill_((s * 13) % 4096);
    tokens.push_back(state.tokens.clone());
    if (decoder) decoder->step(); else decode_step(m, cache, state);
  }
  decoder.reset();
  return {at::cat(tokens, 1).cpu(), cache.k.back().to(at::kCPU, at::kFloat)};
}

// The same, eager, with the fused decode kernels or the libtorch operations (QSWEEP_FUSED_DECODE).
DecodeOutcome decode_fused_or_not(const Model& m, bool fused, bool forced) {
  const ScopedEnv env("QSWEEP_FUSED_DECODE", fused ? nullptr : "0");
  return decode_with(m, 3, false, forced);
}

double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

// bf16 keeps 8 mantissa bits; reductions in another order move values by a few units of 2^-8.
constexpr double kBf16CacheTolerance = 2e-2;

}  // namespace

TEST_F(GpuEngine, CudaGraphDecodeMatchesEagerSteps) {
  c10::InferenceMode guard;
  const Model m = load_model(model_dir(), {DType::bf16, at::Device("cuda:0")});
  const DecodeOutcome replayed = decode_with(m, 4, true, false);
  const DecodeOutcome eager = decode_with(m, 4, false, false);
  EXPECT_TRUE(at::equal(replayed.tokens, eager.tokens));
}

// The fused decode kernels compute what the libtorch operations compute: in float32 the same
// greedy tokens, step after step, over padded rows and rows at different slots.
TEST_F(GpuEngine, FusedDecodeGivesTheUnfusedGreedyTokensInFp32) {
  c10::InferenceMode guard;
  const Model m = load_model(model_dir(), {DType::fp32, at::Device("cuda:0")});
  const DecodeOutcome fused = decode_fused_or_not(m, true, false);
  const DecodeOutcome unfused = decode_fused_or_not(m, false, false);
  EXPECT_TRUE(at::equal(fused.tokens, unfused.tokens));
  EXPECT_LT(relative_difference(fused.last_keys, unfused.last_keys), kFp32RelativeTolerance);
}

// In bf16 the kernels round where libtorch rounds, but reduce in another order: on the same
// inputs the caches they leave agree to bf16 precision.
TEST_F(GpuEngine, FusedDecodeAgreesWithUnfusedInBf16) {
  c10::InferenceMode guard;
  const Model m = load_model(model_dir(), {DType::bf16, at::Device("cuda:0")});
  const DecodeOutcome fused = decode_fused_or_not(m, true, true);
  const DecodeOutcome unfused = decode_fused_or_not(m, false, true);
  EXPECT_LT(relative_difference(fused.last_keys, unfused.last_keys), kBf16CacheTolerance);
}

// With q|k|v and gate|up stacked, the fused kernels read q, k, v and gate, up as strided column
// slices of one product: in float32 the greedy tokens of the unstacked libtorch operations.
TEST_F(GpuEngine, FusedDecodeOverStackedProjectionsGivesTheUnfusedGreedyTokensInFp32) {
  c10::InferenceMode guard;
  const Model separate = load_model(model_dir(), {DType::fp32, at::Device("cuda:0")});
  Model stacked = load_model(model_dir(), {DType::fp32, at::Device("cuda:0")});
  stack_projections(stacked);
  ASSERT_TRUE(stacked.layers.front().qkv && stacked.layers.front().gate_up);
  const DecodeOutcome fused = decode_fused_or_not(stacked, true, false);
  const DecodeOutcome unfused = decode_fused_or_not(separate, false, false);
  EXPECT_TRUE(at::equal(fused.tokens, unfused.tokens));
  EXPECT_LT(relative_difference(fused.last_keys, unfused.last_keys), kFp32RelativeTolerance);
}

// Overlapped launches change when a kernel's blocks start, never what they compute: with them
// and without (QSWEEP_PDL), a quantized model's graph-replayed decode (the GEMVs at 4 rows, the
// tile kernel at 16) gives the same tokens and the same key cache, bit for bit. A kernel that
// loaded its input before waiting for the kernel that writes it would differ here, at some step.
// Folding the norms and residual adds into the projections (QSWEEP_FOLD_NORMS=1) changes no bit
// of a decode, dense or quantized, at batch 1 (the GEMVs' own prologue and epilogue) and 4 (the
// kernels around the product): the GEMVs norm as add_rms_norm norms and add as libtorch adds.
TEST_F(GpuEngine, FoldedNormsChangeNoBitOfADecode) {
  c10::InferenceMode guard;
  const std::vector<std::pair<QuantMethod, DType>> cases = {
      {QuantMethod::none, DType::bf16}, {QuantMethod::none, DType::fp16},
      {QuantMethod::bnb_nf4, DType::fp16}, {QuantMethod::llm_int8, DType::fp16},
      {QuantMethod::rtn, DType::fp16}};
  for (const auto& [method, dtype] : cases) {
    Model m = load_model(model_dir(), {dtype, at::Device("cuda:0")});
    QuantConfig config;
    config.method = method;
    if (method != QuantMethod::none) quantize_model(m, config);
    for (int64_t b : {1, 4}) {
      const auto run = [&](bool fold) {
        const ScopedEnv env("QSWEEP_FOLD_NORMS", fold ? "1" : nullptr);
        return decode_with(m, b, true, false);
      };
      const DecodeOutcome folded = run(true), separate = run(false);
      EXPECT_TRUE(at::equal(folded.tokens, separate.tokens))
          << quant_method_name(method) << ", batch " << b;
      EXPECT_TRUE(at::equal(folded.last_keys, separate.last_keys))
          << quant_method_name(method) << ", batch " << b;
    }
  }
}

TEST_F(GpuEngine, OverlappedLaunchesChangeNoBitOfAQuantizedDecode) {
  c10::InferenceMode guard;
  for (QuantMethod method : {QuantMethod::bnb_nf4, QuantMethod::llm_int8, QuantMethod::rtn}) {
    Model m = load_model(model_dir(), {DType::fp16, at::Device("cuda:0")});
    QuantConfig config;
    config.method = method;
    quantize_model(m, config);
    for (int64_t b : {4, 16}) {
      const auto run = [&](bool overlapped) {
        const ScopedEnv env("QSWEEP_PDL", overlapped ? nullptr : "0");
        return decode_with(m, b, true, false);
      };
      const DecodeOutcome with = run(true), without = run(false);
      EXPECT_TRUE(at::equal(with.tokens, without.tokens))
          << quant_method_name(method) << ", batch " << b;
      EXPECT_TRUE(at::equal(with.last_keys, without.last_keys))
          << quant_method_name(method) << ", batch " << b;
    }
  }
}
