// Pre-quantized Hugging Face checkpoints: qsweep's own written and read back, the published
// layouts as an independent Python script writes them (tests/parity/write_quantized_checkpoints.py),
// and the errors for what qsweep cannot read.
#include "qsweep/model/checkpoint_quantization.h"
#include "qsweep/model/engine.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/model/quantized_checkpoint.h"
#include "qsweep/model/safetensors.h"
#include "qsweep/quant/quantize_model.h"
#include "qsweep/util/text.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace qsweep;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// GPTQ's layout holds float16 scales: a model computing in float32 has each scale rounded to
// the nearest float16, a relative change of at most 2^-11, and so has each weight.
constexpr double kFp16ScaleRelativeTolerance = 1.0 / 2048;

// The tiny made model saved in float16, so that the float16 non-quantized tensors of a written
// checkpoint hold exactly the values the in-memory model computes with.
const std::string& tiny_fp16_model() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("ckpt-source");
    ModelConfig c = model_preset("tiny", 300);
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    write_random_model(c, RandomInit{11, 0.2, at::kHalf}, d);
    return d;
  }();
  return dir;
}

at::Tensor logits_of(const Model& m) {
  c10::InferenceMode guard;
  const std::vector<int64_t> ids = {1, 17, 50, 3, 33, 42, 7, 60};  // below every vocab here
  const int64_t t = static_cast<int64_t>(ids.size());
  KVCache cache = make_kv_cache(m, 1, t);
  return forward(m, at::tensor(ids, at::kLong).view({1, t}), at::ones({1, t}, at::kBool),
                 at::arange(t, at::kLong).view({1, t}), cache, false)[0];
}

struct Written {
  Model in_memory;
  std::string dir;
};

// The tiny model quantized in memory with `q` (computing in float16), and written.
Written quantize_and_write(const QuantConfig& q, const std::string& name) {
  Written w{load_model(tiny_fp16_model(), {DType::fp32, at::kCPU}), make_temp_dir(name)};
  quantize_model(w.in_memory, q);
  write_quantized_checkpoint(w.in_memory, tiny_fp16_model(), DType::fp16, w.dir);
  return w;
}

QuantConfig bnb(QuantMethod method, bool double_quant) {
  QuantConfig q;
  q.method = method;
  q.double_quant = double_quant;
  q.blocksize = 64;
  q.compute_dtype = DType::fp16;
  return q;
}

QuantConfig rtn(int bits, int group_size, bool sym, DType compute = DType::fp16) {
  QuantConfig q;
  q.method = QuantMethod::rtn;
  q.bits = bits;
  q.group_size = group_size;
  q.sym = sym;
  q.compute_dtype = compute;
  return q;
}

void expect_same_model(const Model& a, const Model& b) {
  const auto ma = projections(a), mb = projections(b);
  for (size_t i = 0; i < ma.size(); ++i) {
    EXPECT_EQ(ma[i].linear->weight.index(), mb[i].linear->weight.index()) << ma[i].name;
    EXPECT_TRUE(linear_dequantize(*ma[i].linear).equal(linear_dequantize(*mb[i].linear)))
        << ma[i].name;
  }
  EXPECT_TRUE(logits_of(a).equal(logits_of(b)));
}

json config_of(const std::string& dir) { return json::parse(read_file(dir + "/config.json")); }

void expect_tensor(const WeightFiles& f, const std::string& name, const std::string& dtype,
                   const std::vector<int64_t>& shape) {
  ASSERT_TRUE(f.contains(name)) << name;
  EXPECT_EQ(f.info(name).dtype, dtype) << name;
  EXPECT_EQ(f.info(name).shape, shape) << name;
}

// A copy of checkpoint `dir` with tensor `name` replaced (or removed when `t` is undefined).
std::string with_tensor(const std::string& dir, const std::string& name, const at::Tensor& t) {
  const std::string out = make_temp_dir("ckpt-edited");
  const WeightFiles files = WeightFiles::open_model_dir(dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const std::string& n : files.names())
    if (n != name) tensors.emplace_back(n, files.view(n).clone());
  if (t.defined()) tensors.emplace_back(name, t);
  write_safetensors(out + "/model.safetensors", tensors);
  fs::copy_file(dir + "/config.json", out + "/config.json");
  return out;
}

std::string with_quantization_config(const std::string& dir, const json& qc) {
  json c = config_of(dir);
  c["quantization_config"] = qc;
  std::ofstream(dir + "/config.json") << c.dump(2);
  return dir;
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "message: " << text << "\nlacks: " << part;
}

}  // namespace

struct RoundTripCase {
  std::string name;
  QuantConfig config;
};

class CheckpointRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(CheckpointRoundTrip, ReadBackGivesTheSameWeightsAndLogits) {
  const Written w = quantize_and_write(GetParam().config, "ckpt-" + GetParam().name);
  const Model back = load_model(w.dir, {DType::fp32, at::kCPU});
  expect_same_model(w.in_memory, back);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, CheckpointRoundTrip,
    ::testing::Values(RoundTripCase{"nf4_dq", bnb(QuantMethod::bnb_nf4, true)},
                      RoundTripCase{"fp4_dq", bnb(QuantMethod::bnb_fp4, true)},
                      RoundTripCase{"nf4", bnb(QuantMethod::bnb_nf4, false)},
                      RoundTripCase{"fp4", bnb(QuantMethod::bnb_fp4, false)},
                      RoundTripCase{"rtn4_g32", rtn(4, 32, false)},
                      RoundTripCase{"rtn3_g64_sym", rtn(3, 64, true)},
                      RoundTripCase{"rtn4_per_channel", rtn(4, -1, true)},
                      RoundTripCase{"int8", [] {
                                      QuantConfig q;
                                      q.method = QuantMethod::llm_int8;
                                      q.threshold = 6.0;
                                      q.compute_dtype = DType::fp16;
                                      return q;
                                    }()}),
    [](const auto& info) { return info.param.name; });

TEST(QuantizedCheckpoint, Bnb4TensorsHaveBitsandbytesNamesDtypesAndShapes) {
  const Written w = quantize_and_write(bnb(QuantMethod::bnb_nf4, true), "ckpt-bnb-names");
  const WeightFiles f = WeightFiles::open_model_dir(w.dir);
  // gate_proj of the tiny model: [192, 64], 12288 weights, 192 blocks of 64, one nested block.
  const std::string p = "model.layers.0.mlp.gate_proj.weight";
  expect_tensor(f, p, "U8", {6144, 1});
  expect_tensor(f, p + ".absmax", "U8", {192});
  expect_tensor(f, p + ".quant_map", "F32", {16});
  expect_tensor(f, p + ".nested_absmax", "F32", {1});
  expect_tensor(f, p + ".nested_quant_map", "F32", {256});
  expect_tensor(f, p + ".quant_state.bitsandbytes__nf4", "U8",
                {static_cast<int64_t>(bnb4_quant_state_json(
                                          std::get<Bnb4Weight>(w.in_memory.layers[0].gate.weight))
                                          .size())});
  expect_tensor(f, "model.embed_tokens.weight", "F16", {300, 64});
  EXPECT_FALSE(f.contains("lm_head.weight"));  // tied, and not quantized

  const at::Tensor state = f.view(p + ".quant_state.bitsandbytes__nf4");
  const std::string text(reinterpret_cast<const char*>(state.data_ptr<uint8_t>()), state.numel());
  // json.dumps of QuantState.as_dict's non-tensor items, in its order.
  expect_contains(text, R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float16", )"
                        R"("shape": [192, 64], "nested_blocksize": 256, "nested_dtype": "float32", )"
                        R"("nested_offset": )");
  const json parsed = json::parse(text);
  EXPECT_FLOAT_EQ(parsed["nested_offset"].get<float>(),
                  std::get<Bnb4Weight>(w.in_memory.layers[0].gate.weight).offset);

  const json qc = config_of(w.dir)["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "bitsandbytes");
  EXPECT_EQ(qc["load_in_4bit"], true);
  EXPECT_EQ(qc["load_in_8bit"], false);
  EXPECT_EQ(qc["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(qc["bnb_4bit_use_double_quant"], true);
  EXPECT_EQ(qc["bnb_4bit_compute_dtype"], "float16");
  EXPECT_EQ(qc["bnb_4bit_quant_storage"], "uint8");
  EXPECT_EQ(config_of(w.dir)["torch_dtype"], "float16");
}

TEST(QuantizedCheckpoint, Bnb4WithoutDoubleQuantStoresFloatAbsmaxAndFp4State) {
  const Written w = quantize_and_write(bnb(QuantMethod::bnb_fp4, false), "ckpt-fp4-names");
  const WeightFiles f = WeightFiles::open_model_dir(w.dir);
  const std::string p = "model.layers.1.self_attn.k_proj.weight";  // [32, 64]: 32 blocks
  expect_tensor(f, p, "U8", {1024, 1});
  expect_tensor(f, p + ".absmax", "F32", {32});
  EXPECT_FALSE(f.contains(p + ".nested_absmax"));
  expect_tensor(f, p + ".quant_state.bitsandbytes__fp4", "U8",
                {static_cast<int64_t>(
                    std::string(R"({"quant_type": "fp4", "blocksize": 64, "dtype": "float16", )"
                                R"("shape": [32, 64]})").size())});
  EXPECT_EQ(config_of(w.dir)["quantization_config"]["bnb_4bit_quant_type"], "fp4");
}

TEST(QuantizedCheckpoint, GptqTensorsAndConfigFollowTheV1Layout) {
  const Written w = quantize_and_write(rtn(3, 64, false), "ckpt-gptq-names");
  const WeightFiles f = WeightFiles::open_model_dir(w.dir);
  // down_proj [64, 192]: 3 groups of 64 inputs; 3-bit codes, 32 per 3 words.
  const std::string p = "model.layers.0.mlp.down_proj";
  expect_tensor(f, p + ".qweight", "I32", {18, 64});
  expect_tensor(f, p + ".qzeros", "I32", {3, 6});
  expect_tensor(f, p + ".scales", "F16", {3, 64});
  expect_tensor(f, p + ".g_idx", "I32", {192});
  EXPECT_FALSE(f.contains(p + ".weight"));
  const json qc = config_of(w.dir)["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["bits"], 3);
  EXPECT_EQ(qc["group_size"], 64);
  EXPECT_EQ(qc["sym"], false);
  EXPECT_EQ(qc["desc_act"], false);
  EXPECT_EQ(qc["checkpoint_format"], "gptq");
}

TEST(QuantizedCheckpoint, Int8TensorsFollowLinear8bitLt) {
  QuantConfig q;
  q.method = QuantMethod::llm_int8;
  q.threshold = 4.5;
  const Written w = quantize_and_write(q, "ckpt-int8-names");
  const WeightFiles f = WeightFiles::open_model_dir(w.dir);
  const std::string p = "model.layers.0.self_attn.o_proj";
  expect_tensor(f, p + ".weight", "I8", {64, 64});
  expect_tensor(f, p + ".SCB", "F32", {64});
  expect_tensor(f, p + ".weight_format", "U8", {});
  const json qc = config_of(w.dir)["quantization_config"];
  EXPECT_EQ(qc["load_in_8bit"], true);
  EXPECT_EQ(qc["llm_int8_threshold"], 4.5);
  const Model back = load_model(w.dir, {DType::fp32, at::kCPU});
  EXPECT_EQ(std::get<Int8RowWeight>(back.layers[0].o.weight).threshold, 4.5);
}

TEST(QuantizedCheckpoint, QuantizedLmHeadIsWrittenAndTheEmbeddingsUntied) {
  // bitsandbytes' blocks take the tiny vocabulary (300), which int32 words of codes do not.
  QuantConfig q = bnb(QuantMethod::bnb_nf4, true);
  q.quantize_lm_head = true;
  const Written w = quantize_and_write(q, "ckpt-lm-head");
  EXPECT_EQ(config_of(w.dir)["tie_word_embeddings"], false);
  // An empty skip list has transformers quantize lm_head too (null would skip it).
  EXPECT_EQ(config_of(w.dir)["quantization_config"]["llm_int8_skip_modules"], json::array());
  const Model back = load_model(w.dir, {DType::fp32, at::kCPU});
  EXPECT_TRUE(std::holds_alternative<Bnb4Weight>(back.lm_head.weight));
  EXPECT_TRUE(logits_of(w.in_memory).equal(logits_of(back)));
}

TEST(QuantizedCheckpoint, Float32ScalesRoundToFloat16WithinTolerance) {
  const Written w = quantize_and_write(rtn(4, 32, false, DType::fp32), "ckpt-fp32-scales");
  const Model back = load_model(w.dir, {DType::fp32, at::kCPU});
  const auto a = projections(w.in_memory), b = projections(back);
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor wa = linear_dequantize(*a[i].linear), wb = linear_dequantize(*b[i].linear);
    const double bound = kFp16ScaleRelativeTolerance * wa.abs().max().item<double>();
    EXPECT_LE((wa - wb).abs().max().item<double>(), bound) << a[i].name;
  }
}

// config.json holds one quantization_config for every layer: a model whose layers it cannot
// describe is refused before anything is written, naming the layer and what differs.
TEST(QuantizedCheckpoint, LayersOneQuantizationConfigCannotDescribeAreRefusedByName) {
  const auto quantized = [](const QuantConfig& q) {
    Model m = load_model(tiny_fp16_model(), {DType::fp32, at::kCPU});
    quantize_model(m, q);
    return m;
  };
  const Model g32 = quantized(rtn(4, 32, false));
  // g32 with layer 1's projection taken from `donor`.
  const auto refusal = [&](const Model& donor, Linear LayerWeights::*projection) {
    Model m = g32;
    m.layers[1].*projection = donor.layers[1].*projection;
    const std::string out = make_temp_dir("ckpt-refused");
    const std::string e =
        error_of([&] { write_quantized_checkpoint(m, tiny_fp16_model(), DType::fp16, out); });
    EXPECT_TRUE(fs::is_empty(out)) << out;
    return e;
  };
  expect_contains(refusal(quantized(rtn(4, 16, false)), &LayerWeights::q),
                  "model.layers.1.self_attn.q_proj has another group size than "
                  "model.layers.0.self_attn.q_proj; config.json's quantization_config holds one "
                  "for all layers");
  expect_contains(refusal(quantized(rtn(3, 32, false)), &LayerWeights::k),
                  "model.layers.1.self_attn.k_proj has another bit width");
  expect_contains(refusal(quantized(rtn(4, 32, true)), &LayerWeights::v),
                  "model.layers.1.self_attn.v_proj has another symmetry");
  expect_contains(refusal(quantized(bnb(QuantMethod::bnb_nf4, true)), &LayerWeights::o),
                  "model.layers.1.self_attn.o_proj is stored as");
  expect_contains(refusal(quantized(bnb(QuantMethod::bnb_nf4, true)), &LayerWeights::o),
                  "a checkpoint holds one format");
  // One group over down_proj's 192 inputs is no group size of 32.
  expect_contains(refusal(quantized(rtn(4, -1, false)), &LayerWeights::down),
                  "model.layers.1.mlp.down_proj has one group over its 192 inputs while other "
                  "layers use groups of 32");
  // Where every layer is one group (of its own width), GPTQ's group_size is -1.
  const Model per_channel = quantized(rtn(4, -1, false));
  const std::string dir = make_temp_dir("ckpt-per-channel");
  write_quantized_checkpoint(per_channel, tiny_fp16_model(), DType::fp16, dir);
  EXPECT_EQ(config_of(dir)["quantization_config"]["group_size"], -1);
}

TEST(QuantizedCheckpoint, UnsupportedQuantMethodNamesTheKeyAndWhatIsSupported) {
  const Written w = quantize_and_write(rtn(4, 32, false), "ckpt-hqq");
  for (const std::string method : {"hqq", "something_new"}) {
    with_quantization_config(w.dir, {{"quant_method", method}, {"bits", 4}});
    const std::string e = error_of([&] { load_model(w.dir, {DType::fp32, at::kCPU}); });
    expect_contains(e, w.dir + "/config.json: key 'quantization_config.quant_method' is '" + method);
    expect_contains(e, "supported: quant_method 'bitsandbytes'");
    expect_contains(e, "'gptq'");
  }
  // GPTQ's layout under an AWQ config: the packed dimension gives it away, and the error says so.
  with_quantization_config(w.dir, {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32}});
  expect_contains(error_of([&] { load_model(w.dir, {DType::fp32, at::kCPU}); }),
                  "tensor 'model.layers.0.self_attn.q_proj.qweight' is I32 [8, 64] but a awq (gemm) "
                  "layer of [model.layers.0.self_attn.q_proj");
  with_quantization_config(w.dir, {{"quant_method", "awq"}, {"zero_point", false}});
  expect_contains(error_of([&] { read_checkpoint_quantization(w.dir); }),
                  "key 'quantization_config.zero_point' is false");
  with_quantization_config(w.dir, {{"quant_method", "awq"}, {"bits", 3}});
  expect_contains(error_of([&] { read_checkpoint_quantization(w.dir); }),
                  "key 'quantization_config.bits' must be 4 for AWQ's GEMM layout, got 3");
  with_quantization_config(w.dir, {{"quant_method", "awq"}, {"version", "gemv"}});
  expect_contains(error_of([&] { read_checkpoint_quantization(w.dir); }),
                  "key 'quantization_config.version' is 'gemv'");
  with_quantization_config(w.dir, {{"quant_method", "gptq"}, {"bits", 4}, {"checkpoint_format", "marlin"}});
  expect_contains(error_of([&] { read_checkpoint_quantization(w.dir); }),
                  "key 'quantization_config.checkpoint_format' is 'marlin'; qsweep reads gptq, gptq_v2");
  with_quantization_config(w.dir, {{"quant_method", "gptq"}, {"bits", 5}});
  expect_contains(error_of([&] { read_checkpoint_quantization(w.dir); }),
                  "key 'quantization_config.bits' must be one of 2, 3, 4, 8, got 5");
  with_quantization_config(w.dir, {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true},
                                   {"bnb_4bit_quant_storage", "bfloat16"}});
  expect_contains(error_of([&] { read_checkpoint_quantization(w.dir); }),
                  "key 'quantization_config.bnb_4bit_quant_storage' is 'bfloat16'");
}

TEST(QuantizedCheckpoint, MalformedQuantizedTensorsNameTheFileTensorAndKey) {
  const Written bnb4 = quantize_and_write(bnb(QuantMethod::bnb_nf4, true), "ckpt-malformed");
  const std::string p = "model.layers.0.self_attn.q_proj.weight";
  auto load_error = [](const std::string& dir) {
    return error_of([&] { load_model(dir, {DType::fp32, at::kCPU}); });
  };
  // absmax of the wrong shape.
  std::string dir = with_tensor(bnb4.dir, p + ".absmax", at::zeros({3}, at::kByte));
  std::string e = load_error(dir);
  expect_contains(e, dir + "/model.safetensors: tensor '" + p + ".absmax' is U8 [3]");
  expect_contains(e, "stores it as U8 [64]");
  // A quant_state whose blocksize bitsandbytes never uses.
  const std::string bad_state =
      R"({"quant_type": "nf4", "blocksize": 48, "dtype": "float16", "shape": [64, 64], )"
      R"("nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.01})";
  at::Tensor bytes = at::empty({static_cast<int64_t>(bad_state.size())}, at::kByte);
  std::copy(bad_state.begin(), bad_state.end(), bytes.data_ptr<uint8_t>());
  dir = with_tensor(bnb4.dir, p + ".quant_state.bitsandbytes__nf4", bytes);
  expect_contains(load_error(dir), "tensor '" + p + ".quant_state.bitsandbytes__nf4': quant_state "
                                   "key 'blocksize' is 48");
  // The quant_state missing altogether: a uint8 weight alone is not a dense weight.
  dir = with_tensor(bnb4.dir, p + ".quant_state.bitsandbytes__nf4", at::Tensor());
  expect_contains(load_error(dir), "tensor '" + p + "' is U8 but has none of the tensors of a "
                                   "bitsandbytes 4-bit layer");

  const Written gptq = quantize_and_write(rtn(4, 32, false), "ckpt-malformed-gptq");
  const std::string g = "model.layers.1.mlp.up_proj";
  dir = with_tensor(gptq.dir, g + ".qzeros", at::zeros({2, 24}, at::kFloat));
  expect_contains(load_error(dir), "tensor '" + g + ".qzeros' is F32 [2, 24] but a gptq layer of [" +
                                       g + ", ...] stores it as I32 [2, 24]");
  dir = with_tensor(gptq.dir, g + ".scales", at::Tensor());
  expect_contains(load_error(dir), "tensor '" + g + ".scales' is missing; a gptq layer stores it "
                                   "(quantization_config in " + dir + "/config.json)");
}

// The published layouts, written without qsweep by tests/parity/write_quantized_checkpoints.py
// (numpy only), with the dequantized weights the script computes from its own codes.
TEST(PublishedLayouts, PythonWrittenGptqAndBnbCheckpointsDequantizeAsTheScriptExpects) {
  const std::string python = "/usr/bin/python3";
  if (std::system((python + " -c 'import numpy' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "needs " << python << " with numpy to write the fixtures";
  const std::string out = make_temp_dir("published");
  ASSERT_EQ(std::system((python + " " QSWEEP_SOURCE_DIR
                         "/tests/parity/write_quantized_checkpoints.py --out " + out).c_str()),
            0);
  for (const std::string name : {"gptq_tiny", "gptq_v2_tiny", "bnb_nf4_dq_tiny", "bnb_fp4_tiny",
                                 "bnb_int8_tiny", "awq_gemm_tiny"}) {
    SCOPED_TRACE(name);
    const std::string dir = out + "/" + name;
    const Model m = load_model(dir, {DType::fp32, at::kCPU});
    const WeightFiles expected = WeightFiles::open_file(dir + "/expected_dequantized.safetensors");
    int compared = 0;
    for (const auto& [module, layer] : projections(m)) {
      ASSERT_TRUE(expected.contains(module)) << module;
      EXPECT_TRUE(linear_dequantize(*layer).equal(expected.view(module))) << module;
      ++compared;
    }
    EXPECT_EQ(compared, 7);
    EXPECT_TRUE(at::isfinite(logits_of(m)).all().item<bool>());
  }
}
