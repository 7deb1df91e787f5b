// Loader and engine tests on random-init models written by make_model.
#include "qsweep/model/engine.h"
#include "qsweep/model/layer_forward.h"
#include "qsweep/util/error.h"
#include "qsweep/model/make_model.h"
#include "qsweep/model/model.h"
#include "qsweep/model/check_weights.h"
#include "qsweep/model/perplexity.h"
#include "qsweep/model/safetensors.h"
#include "qsweep/util/text.h"
#include "test_helpers.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace qsweep;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) { return make_temp_dir(name); }

// The weight of a projection the loader holds dense.
const at::Tensor& dense(const Linear& l) { return std::get<DenseWeight>(l.weight).weight; }

ModelConfig tiny_config() {
  ModelConfig c = model_preset("tiny", 300);
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// A made model shared by the engine tests. A larger init spread than transformers' default gives
// peaked logits, so greedy choices are far from ties and comparisons are meaningful.
const std::string& tiny_model_dir() {
  static const std::string dir = [] {
    const std::string d = temp_dir("tiny-model");
    write_random_model(tiny_config(), RandomInit{7, 0.2, at::kFloat}, d);
    return d;
  }();
  return dir;
}


at::Tensor long_tensor(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong); }

// Logits of every position of one unpadded sequence run in a single prefill.
at::Tensor full_logits(const Model& m, const std::vector<int64_t>& ids) {
  const int64_t t = static_cast<int64_t>(ids.size());
  KVCache cache = make_kv_cache(m, 1, t);
  return forward(m, long_tensor(ids).view({1, t}), at::ones({1, t}, at::kBool),
                 at::arange(t, at::kLong).view({1, t}), cache, false)[0];
}

}  // namespace

TEST(ModelConfig, ReadsLlama3FieldsAndDefaults) {
  const ModelConfig c = load_model_config(tiny_model_dir());
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope_scaling, RopeScaling::llama3);
  EXPECT_DOUBLE_EQ(c.rope_factor, 32.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>({2}));
}

TEST(ModelConfig, BadConfigNamesFileAndKey) {
  const std::string dir = temp_dir("bad-config");
  EXPECT_NE(error_of([&] { load_model_config(dir); }).find("config.json: not found"),
            std::string::npos);
  std::ofstream(dir + "/config.json") << R"({"model_type":"llama","vocab_size":10})";
  const std::string message = error_of([&] { load_model_config(dir); });
  EXPECT_NE(message.find("missing key 'hidden_size'"), std::string::npos) << message;
  std::ofstream(dir + "/config.json") << R"({"model_type":"gpt2"})";
  EXPECT_NE(error_of([&] { load_model_config(dir); }).find("model_type 'gpt2'"), std::string::npos);
}

// What the engine assumes of the shapes is checked where config.json is read, naming the key.
TEST(ModelConfig, InconsistentShapesAndOtherArchitecturesAreRefused) {
  const std::string dir = temp_dir("inconsistent-config");
  auto error_with = [&](const std::string& extra) {
    std::ofstream(dir + "/config.json")
        << R"({"model_type":"llama","vocab_size":300,"hidden_size":64,"intermediate_size":192,)"
        << R"("num_hidden_layers":2,"num_attention_heads":4)" << extra << "}";
    return error_of([&] { load_model_config(dir); });
  };
  EXPECT_EQ(error_with(""), "(no error)");
  EXPECT_NE(error_with(R"(,"num_key_value_heads":3)").find("multiple of num_key_value_heads (3)"),
            std::string::npos);
  EXPECT_NE(error_with(R"(,"head_dim":15)").find("head_dim 15 is odd"), std::string::npos);
  EXPECT_NE(error_with(R"(,"architectures":["MistralForCausalLM"])").find("MistralForCausalLM"),
            std::string::npos);
  EXPECT_NE(error_with(R"(,"hidden_act":"gelu")").find("hidden_act \"gelu\""), std::string::npos);
  EXPECT_NE(error_with(R"(,"max_position_embeddings":"8k")")
                .find("key 'max_position_embeddings' must be a positive integer"),
            std::string::npos);
  EXPECT_NE(error_with(R"(,"rms_norm_eps":0)").find("key 'rms_norm_eps' must be a positive number"),
            std::string::npos);
  EXPECT_NE(error_with(R"(,"eos_token_id":300)").find("eos_token_id 300 is outside the vocabulary"),
            std::string::npos);
  std::ofstream(dir + "/generation_config.json") << R"({"eos_token_id":["</s>"]})";
  const std::string generation = error_with("");
  EXPECT_NE(generation.find("generation_config.json: key 'eos_token_id' must be a token id"),
            std::string::npos) << generation;
}

TEST(RopeFrequencies, Llama3ScalingMatchesTransformers) {
  // Llama-3.2-1B: head_dim 64, theta 500000, factor 32, low 1, high 4, original 8192. The
  // highest frequencies (wavelength < 2048) stay 500000^(-2i/64); the lowest (wavelength > 8192)
  // are divided by 32. tests/parity/ checks the whole table against transformers on the GPU.
  ModelConfig c = model_preset("llama-3.2-1b", 128256);
  const at::Tensor f = rope_inverse_frequencies(c);
  ASSERT_EQ(f.size(0), 32);
  EXPECT_NEAR(f[0].item<double>(), 1.0, 1e-7);            // high frequency: unscaled
  EXPECT_NEAR(f[1].item<double>(), 0.6636, 1e-4);
  // Low frequencies (wavelength > 8192) are divided by the factor.
  const double unscaled_last = 1.0 / std::pow(500000.0, 62.0 / 64.0);
  EXPECT_NEAR(f[31].item<double>(), unscaled_last / 32.0, 1e-12);
}

TEST(Safetensors, RoundTripKeepsDtypeShapeAndValues) {
  const std::string path = temp_dir("st") + "/t.safetensors";
  const at::Tensor a = at::randn({3, 5});
  const at::Tensor b = at::randn({7}).to(at::kBFloat16);
  write_safetensors(path, {{"a", a}, {"b", b}});
  const WeightFiles files = WeightFiles::open_file(path);
  EXPECT_EQ(files.info("b").dtype, "BF16");
  EXPECT_TRUE(at::equal(files.view("a"), a));
  EXPECT_TRUE(at::equal(files.view("b"), b));
  EXPECT_TRUE(at::allclose(files.load("b", {7}, at::kFloat, at::kCPU), b.to(at::kFloat)));
}

TEST(Safetensors, TruncatedShapeAndMissingTensorErrorsNameTheTensor) {
  const std::string dir = temp_dir("st-bad");
  const std::string path = dir + "/model.safetensors";
  write_safetensors(path, {{"w", at::randn({4, 4})}});
  const WeightFiles files = WeightFiles::open_file(path);
  EXPECT_NE(error_of([&] { files.load("w", {4, 5}, at::kFloat, at::kCPU); })
                .find("tensor 'w' has shape [4, 4] but config.json implies [4, 5]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { files.view("nope"); }).find("tensor 'nope' is missing"),
            std::string::npos);
  fs::resize_file(path, fs::file_size(path) - 10);
  EXPECT_NE(error_of([&] { WeightFiles::open_file(path); }).find("truncated"), std::string::npos);
}

// The header is checked whole when a file is opened: an entry that is not a safetensors entry, or
// bytes that do not match dtype x shape, name the tensor before anything reads it.
TEST(Safetensors, MalformedHeaderEntriesAndByteCountsAreRefusedAtOpen) {
  const std::string path = temp_dir("st-header") + "/t.safetensors";
  auto open_with = [&](const std::string& header) {
    std::string text = header;
    text.append((8 - text.size() % 8) % 8, ' ');
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
    out << text << std::string(16, '\0');
    out.close();
    return error_of([&] { WeightFiles::open_file(path); });
  };
  EXPECT_EQ(open_with(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})"), "(no error)");
  EXPECT_NE(open_with(R"({"w":{"shape":[4],"data_offsets":[0,16]}})").find("tensor 'w' has no string 'dtype'"),
            std::string::npos);
  EXPECT_NE(open_with(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0]}})").find("'data_offsets'"),
            std::string::npos);
  EXPECT_NE(open_with(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})").find("not a size"),
            std::string::npos);
  EXPECT_NE(open_with(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})")
                .find("tensor 'w' has 16 bytes but shape [3] of F32 needs 12"),
            std::string::npos);
  EXPECT_NE(open_with(R"([1, 2])").find("not a JSON object"), std::string::npos);
}

// load() converts to a float compute dtype; integer bytes must not be converted as if they were
// weights, whatever the tensor's name.
TEST(Safetensors, FloatWeightLabelledAsIntegersIsRefused) {
  const std::string path = temp_dir("st-int") + "/t.safetensors";
  write_safetensors(path, {{"w", at::arange(4, at::kInt)}, {"f", at::ones({4}).to(at::kHalf)}});
  const WeightFiles files = WeightFiles::open_file(path);
  EXPECT_NE(error_of([&] { files.load("w", {4}, at::kFloat, at::kCPU); })
                .find("tensor 'w' is labelled I32, but it is a float weight"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { files.check_float("f", {4}); }), "(no error)");
}

TEST(Safetensors, ShardedIndexLoadsEveryShard) {
  const std::string dir = temp_dir("st-shards");
  write_safetensors(dir + "/a.safetensors", {{"x", at::ones({2})}});
  write_safetensors(dir + "/b.safetensors", {{"y", at::zeros({3})}});
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})";
  const WeightFiles files = WeightFiles::open_model_dir(dir);
  EXPECT_EQ(files.view("y").size(0), 3);
  EXPECT_EQ(files.info("x").file, dir + "/a.safetensors");
}

TEST(ModelLoader, MissingWeightsFileSaysWhatIsExpected) {
  const std::string dir = temp_dir("no-weights");
  fs::copy_file(tiny_model_dir() + "/config.json", dir + "/config.json");
  EXPECT_NE(error_of([&] { load_model(dir, {}); }).find("no model.safetensors"), std::string::npos);
}

// check_model_weights is the loader's own first step: a model it passes loads, and a tensor the
// config needs that is missing or mislabelled fails it from the header alone.
TEST(ModelLoader, CheckModelWeightsRefusesWhatTheLoaderWouldFailOn) {
  EXPECT_EQ(error_of([&] { check_model_weights(tiny_model_dir()); }), "(no error)");
  const std::string dir = temp_dir("mislabelled");
  fs::copy_file(tiny_model_dir() + "/config.json", dir + "/config.json");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  const WeightFiles good = WeightFiles::open_model_dir(tiny_model_dir());
  for (const std::string& name : good.names())
    if (name != "model.layers.1.mlp.up_proj.weight") tensors.emplace_back(name, good.view(name));
  write_safetensors(dir + "/model.safetensors", tensors);
  const std::string missing = error_of([&] { check_model_weights(dir); });
  EXPECT_NE(missing.find("tensor 'model.layers.1.mlp.up_proj.weight' is missing"), std::string::npos)
      << missing;
  tensors.emplace_back("model.layers.1.mlp.up_proj.weight",
                       good.view("model.layers.1.mlp.up_proj.weight").view(at::kInt));
  write_safetensors(dir + "/model.safetensors", tensors);
  const std::string mislabelled = error_of([&] { check_model_weights(dir); });
  EXPECT_NE(mislabelled.find("'model.layers.1.mlp.up_proj.weight' is labelled I32"), std::string::npos)
      << mislabelled;
  EXPECT_EQ(error_of([&] { load_model(dir, {}); }), mislabelled);
}

TEST(ModelLoader, TiedEmbeddingsShareStorageAndCountOnce) {
  const Model m = load_model(tiny_model_dir(), {});
  EXPECT_TRUE(dense(m.lm_head).is_same(m.embed));
  const ModelConfig& c = m.config;
  const int64_t per_layer = 2 * 64 + (64 * 64) * 2 + (32 * 64) * 2 + 3 * 64 * 192;
  EXPECT_EQ(model_bytes(m), 4 * (int64_t(c.vocab_size) * 64 + 64 + 2 * per_layer));
}

TEST(Engine, IncrementalDecodeMatchesFullPrefill) {
  c10::InferenceMode guard;
  const Model m = load_model(tiny_model_dir(), {});
  const std::vector<int64_t> ids = {1, 17, 42, 99, 5, 250, 33, 7};
  const at::Tensor reference = full_logits(m, ids);
  KVCache cache = make_kv_cache(m, 1, 8);
  forward(m, long_tensor({1, 17, 42}).view({1, 3}), at::ones({1, 3}, at::kBool),
          long_tensor({0, 1, 2}).view({1, 3}), cache, true);
  for (int64_t i = 3; i < 8; ++i) {
    const at::Tensor step = forward(m, long_tensor({ids[i]}).view({1, 1}), at::ones({1, 1}, at::kBool),
                                    long_tensor({i}).view({1, 1}), cache, true);
    EXPECT_LT((step[0][0] - reference[i]).abs().max().item<double>(), 1e-4) << "position " << i;
  }
}

// Calibration runs the model layer by layer; it must see what the cached forward pass computes.
TEST(LayerForward, LayerByLayerMatchesTheCachedForwardPass) {
  c10::InferenceMode guard;
  const Model m = load_model(tiny_model_dir(), {});
  const std::vector<int64_t> ids = {1, 17, 42, 99, 5, 250, 33, 7};
  const at::Tensor reference = full_logits(m, ids);
  at::Tensor x = embed_tokens(m, long_tensor(ids).view({1, 8}));
  for (const LayerWeights& l : m.layers) {
    // Each group's output, replayed from its input, is the layer's own computation.
    const at::Tensor attn_in = group_input(m, l, x, ProjectionGroup::qkv);
    const at::Tensor o_in = group_input(m, l, x, ProjectionGroup::o);
    EXPECT_TRUE(at::allclose(group_output(m, l, attn_in, ProjectionGroup::qkv),
                             group_output(m, l, o_in, ProjectionGroup::o), 1e-5, 1e-6));
    const at::Tensor mlp_in = group_input(m, l, x, ProjectionGroup::gate_up);
    const at::Tensor down_in = group_input(m, l, x, ProjectionGroup::down);
    EXPECT_EQ(down_in.size(-1), m.config.intermediate_size);
    EXPECT_TRUE(at::allclose(group_output(m, l, mlp_in, ProjectionGroup::gate_up),
                             group_output(m, l, down_in, ProjectionGroup::down), 1e-5, 1e-6));
    x = layer_forward(m, l, x);
  }
  const at::Tensor h = x.to(at::kFloat);
  const at::Tensor normed =
      m.final_norm * (h * at::rsqrt(h.pow(2).mean(-1, true) + m.config.rms_norm_eps));
  const at::Tensor logits = linear_forward(m.lm_head, normed)[0];
  EXPECT_LT((logits - reference).abs().max().item<double>(), 1e-4);
}

TEST(Engine, LeftPaddingDoesNotChangeLogits) {
  c10::InferenceMode guard;
  const Model m = load_model(tiny_model_dir(), {});
  const std::vector<int64_t> short_ids = {1, 8, 9}, long_ids = {1, 50, 60, 70, 80, 90};
  const at::Tensor expect_short = full_logits(m, short_ids);
  const at::Tensor expect_long = full_logits(m, long_ids);
  KVCache cache = make_kv_cache(m, 2, 6);
  const at::Tensor tokens = long_tensor({0, 0, 0, 1, 8, 9, 1, 50, 60, 70, 80, 90}).view({2, 6});
  const at::Tensor real = long_tensor({0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}).view({2, 6}).to(at::kBool);
  const at::Tensor pos = long_tensor({0, 0, 0, 0, 1, 2, 0, 1, 2, 3, 4, 5}).view({2, 6});
  const at::Tensor logits = forward(m, tokens, real, pos, cache, false);
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_LT((logits[0][3 + i] - expect_short[i]).abs().max().item<double>(), 1e-4);
  EXPECT_LT((logits[1] - expect_long).abs().max().item<double>(), 1e-4);
  EXPECT_FALSE(logits.isnan().any().item<bool>());
}

TEST(Engine, GroupedAttentionMatchesRepeatedKvReference) {
  // Recomputes layer 0's attention output with kv heads explicitly repeated (transformers'
  // repeat_kv) and checks the engine's first-layer cache-based result through the logits of a
  // one-layer model.
  c10::InferenceMode guard;
  ModelConfig c = tiny_config();
  c.num_layers = 1;
  const std::string dir = temp_dir("one-layer");
  write_random_model(c, RandomInit{3, 0.2, at::kFloat}, dir);
  const Model m = load_model(dir, {});
  const std::vector<int64_t> ids = {1, 4, 9, 16, 25};
  const at::Tensor got = full_logits(m, ids);

  const int64_t t = 5, h = c.num_heads, kv = c.num_kv_heads, d = c.head_dim;
  auto norm = [&](const at::Tensor& x, const at::Tensor& w) {
    return w * x * at::rsqrt(x.pow(2).mean(-1, true) + c.rms_norm_eps);
  };
  const LayerWeights& l = m.layers[0];
  const at::Tensor x = at::embedding(m.embed, long_tensor(ids));
  const at::Tensor hN = norm(x, l.input_norm);
  at::Tensor q = at::matmul(hN, dense(l.q).t()).view({t, h, d}).transpose(0, 1);
  at::Tensor k = at::matmul(hN, dense(l.k).t()).view({t, kv, d}).transpose(0, 1);
  at::Tensor v = at::matmul(hN, dense(l.v).t()).view({t, kv, d}).transpose(0, 1);
  const at::Tensor freqs = at::arange(t, at::kFloat).unsqueeze(1) * m.inv_freq;
  const at::Tensor cos = at::cat({freqs, freqs}, -1).cos(), sin = at::cat({freqs, freqs}, -1).sin();
  auto rot = [&](const at::Tensor& a) {
    return at::cat({-a.narrow(-1, d / 2, d / 2), a.narrow(-1, 0, d / 2)}, -1);
  };
  q = q * cos + rot(q) * sin;
  k = k * cos + rot(k) * sin;
  k = k.repeat_interleave(h / kv, 0);
  v = v.repeat_interleave(h / kv, 0);
  at::Tensor scores = at::matmul(q, k.transpose(1, 2)) / std::sqrt(double(d));
  scores = scores.masked_fill(at::ones({t, t}, at::kBool).triu(1), -INFINITY);
  const at::Tensor attn = at::matmul(at::softmax(scores, -1), v).transpose(0, 1).reshape({t, h * d});
  at::Tensor y = x + at::matmul(attn, dense(l.o).t());
  const at::Tensor y2 = norm(y, l.post_attention_norm);
  y = y + at::matmul(at::silu(at::matmul(y2, dense(l.gate).t())) * at::matmul(y2, dense(l.up).t()),
                     dense(l.down).t());
  const at::Tensor expect = at::matmul(norm(y, m.final_norm), m.embed.t());
  EXPECT_LT((got - expect).abs().max().item<double>(), 1e-4);
}

TEST(Perplexity, ZeroWeightsGiveUniformPredictionsAndSelfKlIsZero) {
  // All-zero weights make every logit 0: each next token has probability 1/vocab exactly, so
  // the perplexity is the vocabulary size.
  ModelConfig c = tiny_config();
  const std::string dir = temp_dir("zero-model");
  write_random_model(c, RandomInit{1, 0.0, at::kFloat}, dir);
  const Model zero = load_model(dir, {});
  const std::vector<std::vector<int32_t>> windows = {{1, 5, 9, 200}, {1, 7}};
  const TextScores flat = score_text(zero, nullptr, windows);
  EXPECT_EQ(flat.tokens, 4u);
  EXPECT_NEAR(flat.perplexity, c.vocab_size, 1e-6 * c.vocab_size);
  EXPECT_FALSE(flat.kl_vs_baseline.has_value());

  const Model m = load_model(tiny_model_dir(), {});
  const TextScores self = score_text(m, &m, windows);
  EXPECT_NEAR(*self.kl_vs_baseline, 0.0, 1e-6);
  EXPECT_GT(*score_text(m, &zero, windows).kl_vs_baseline, 0.1);
  // The sweep keeps the baseline's logits instead of the baseline: the same KL, bit for bit.
  EXPECT_EQ(*score_text(m, window_logits(zero, windows), windows).kl_vs_baseline,
            *score_text(m, &zero, windows).kl_vs_baseline);
}

TEST(Decode, DeviceSideStepsMatchRecomputingEveryPrefix) {
  // decode_step (the CUDA-graph-capturable step: cache slot and positions on the device, full
  // cache attended under the key mask) against greedy decoding by full prefills.
  c10::InferenceMode guard;
  const Model m = load_model(tiny_model_dir(), {});
  std::vector<int64_t> ids = {1, 40, 41, 42, 43};
  const int steps = 12;
  KVCache cache = make_kv_cache(m, 1, static_cast<int64_t>(ids.size()) + steps);
  const int64_t t = static_cast<int64_t>(ids.size());
  const at::Tensor logits = forward(m, long_tensor(ids).view({1, t}), at::ones({1, t}, at::kBool),
                                    at::arange(t, at::kLong).view({1, t}), cache, true);
  DecodeState state{logits.argmax(-1), long_tensor({t}).view({1, 1}), long_tensor({t})};
  Decoder decoder(m, cache, state);
  for (int s = 0; s < steps; ++s) {
    const int64_t expected = full_logits(m, ids)[t - 1 + s].argmax().item<int64_t>();
    ASSERT_EQ(state.tokens.item<int64_t>(), expected) << "step " << s;
    ids.push_back(expected);
    decoder.step();
  }
}
