// GPTQ and AWQ through the layer-by-layer calibration pipeline, on a made model with planted
// outlier dimensions (the activation outliers that make calibration matter), against RTN at
// the same bits and group size.
#include "qsweep/model/format_int_group.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/model/perplexity.h"
#include "qsweep/quant/calibrated.h"
#include "qsweep/quant/calibration.h"
#include "qsweep/quant/quantize_model.h"
#include "qsweep/util/error.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <fstream>

using namespace qsweep;

namespace {

constexpr int kVocab = 300;

const std::string& outlier_model_dir() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("calibrated-model");
    ModelConfig c = model_preset("tiny", kVocab);
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    RandomInit init{11, 0.1, at::kFloat};
    init.outliers = 3;
    write_random_model(c, init, d);
    return d;
  }();
  return dir;
}

at::Tensor random_tokens(uint64_t seed, int64_t samples, int64_t length) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(3, kVocab, {samples, length}, gen, at::kLong);
}

std::vector<std::vector<int32_t>> windows_of(const at::Tensor& tokens) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < tokens.size(0); ++i) {
    const at::Tensor row = tokens[i].to(at::kInt).contiguous();
    out.emplace_back(row.data_ptr<int32_t>(), row.data_ptr<int32_t>() + row.numel());
  }
  return out;
}

QuantConfig config(QuantMethod method, int bits) {
  QuantConfig c;
  c.method = method;
  c.bits = bits;
  c.group_size = 32;
  c.sym = method != QuantMethod::awq;  // AWQ is asymmetric; its RTN control is too
  return c;
}

Model fp32_model() { return load_model(outlier_model_dir(), {DType::fp32, at::kCPU}); }

// KL(fp32 model || quantized) on held-out windows, in nats per token.
double kl_from_fp32(const Model& quantized) {
  const Model reference = fp32_model();
  return *score_text(quantized, &reference, windows_of(random_tokens(99, 4, 48))).kl_vs_baseline;
}

double total_error(const CalibrationReport& r) {
  double sum = 0;
  for (const QuantError& e : r.errors) sum += e.error;
  return sum;
}

void expect_beats_rtn(QuantMethod method, int bits, size_t parts) {
  c10::InferenceMode guard;
  Model m = fp32_model();
  const CalibrationReport report =
      quantize_calibrated(m, config(method, bits), random_tokens(5, 16, 64));
  ASSERT_EQ(report.errors.size(), parts * m.layers.size());
  for (const QuantError& e : report.errors)
    EXPECT_LT(e.error, e.rtn_error) << e.name << " at " << bits << " bits";
  QuantConfig rtn = config(QuantMethod::rtn, bits);
  Model r = fp32_model();
  quantize_model(r, rtn);
  EXPECT_LT(kl_from_fp32(m), kl_from_fp32(r)) << quant_method_name(method) << " " << bits << " bits";
}

}  // namespace

TEST(Calibrated, GptqBeatsRtnOnEveryProjectionAndInTheLogits) {
  for (int bits : {3, 4}) expect_beats_rtn(QuantMethod::gptq, bits, 7);
}

TEST(Calibrated, AwqBeatsRtnOnEveryBlockAndInTheLogits) {
  for (int bits : {3, 4}) expect_beats_rtn(QuantMethod::awq, bits, 4);
}

TEST(Calibrated, ActOrderChangesGroupIndicesAndDoesNotRaiseTheError) {
  c10::InferenceMode guard;
  const at::Tensor tokens = random_tokens(5, 16, 64);
  Model plain = fp32_model(), ordered = fp32_model();
  QuantConfig c = config(QuantMethod::gptq, 3);
  const double plain_error = total_error(quantize_calibrated(plain, c, tokens));
  c.desc_act = true;
  const double ordered_error = total_error(quantize_calibrated(ordered, c, tokens));
  EXPECT_LE(ordered_error, plain_error);
  const auto& w = std::get<IntGroupWeight>(ordered.layers[0].q.weight);
  const at::Tensor grouped = at::arange(w.in, at::kInt).div(w.group_size, "floor").to(at::kInt);
  EXPECT_FALSE(at::equal(w.g_idx.cpu(), grouped)) << "act-order left g_idx in column order";
}

TEST(Calibrated, AwqFoldsItsScalesIntoTheNormsAndLeavesTheEmbeddingsAlone) {
  c10::InferenceMode guard;
  Model m = fp32_model();
  const Model reference = fp32_model();
  quantize_calibrated(m, config(QuantMethod::awq, 4), random_tokens(5, 16, 64));
  // The outlier dimensions' norm entries are divided by their scales, which exceed the others.
  EXPECT_FALSE(at::allclose(m.layers[0].input_norm, reference.layers[0].input_norm));
  EXPECT_TRUE(m.embed.equal(reference.embed));
}

TEST(Calibration, WindowsAreSeededAndATextTooShortIsRefusedWithWhatFits) {
  const Tokenizer tokenizer =
      Tokenizer::from_files(QSWEEP_SOURCE_DIR "/.cache/tokenizers/llama3/tokenizer.json");
  CalibrationSpec spec;
  spec.text = QSWEEP_SOURCE_DIR "/data/calibration/moby_dick.txt";
  spec.samples = 4;
  spec.seed = 7;
  const at::Tensor a = calibration_tokens(tokenizer, spec, 128);
  EXPECT_EQ(a.sizes(), (at::IntArrayRef{4, 128}));
  EXPECT_TRUE(a.equal(calibration_tokens(tokenizer, spec, 128)));
  spec.seed = 8;
  EXPECT_FALSE(a.equal(calibration_tokens(tokenizer, spec, 128)));

  const std::string short_text = make_temp_dir("calibration") + "/short.txt";
  std::ofstream(short_text) << "Call me Ishmael. Some years ago, never mind how long precisely.";
  spec.text = short_text;
  try {
    calibration_tokens(tokenizer, spec, 128);
    FAIL() << "a 13-token text gave 4 windows of 128";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(short_text), std::string::npos) << message;
    EXPECT_NE(message.find("fewer than samples x seq_len = 4 x 128"), std::string::npos) << message;
  }
}
