#include "qsweep/sweep/sweep_spec.h"
#include "qsweep/util/text.h"
#include "sweep_fixture.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace qsweep;
using qsweep::testing::with_line;

namespace {

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "message: " << text << "\nlacks: " << part;
}

class SweepSpecTest : public qsweep::testing::TempSweep {
 protected:
  // Checks that the error names the job file and line, the key, and says what is wrong.
  void expect_error(const std::string& job, int line, const std::string& key,
                    const std::string& what) {
    const std::string message = error_of(job);
    ASSERT_FALSE(message.empty()) << "the job loaded, but should have been refused";
    expect_contains(message, path("job.yaml") + ":" + std::to_string(line) + ": ");
    expect_contains(message, "key '" + key + "'");
    expect_contains(message, what);
  }
};

TEST_F(SweepSpecTest, ValidJobLoadsWithDefaultsAndAbsolutePaths) {
  const SweepSpec spec = load(valid_job());
  EXPECT_EQ(spec.name, "t");
  EXPECT_EQ(spec.model, path("model"));
  EXPECT_EQ(spec.tokenizer, path("model"));
  EXPECT_EQ(spec.store, path("t.h5"));
  EXPECT_EQ(spec.device, "auto");
  EXPECT_EQ(spec.baseline, "fp32");
  ASSERT_EQ(spec.configs.size(), 2u);
  EXPECT_EQ(spec.configs[1].dtype, DType::bf16);
  EXPECT_TRUE(spec.evaluation.enabled);
  EXPECT_EQ(spec.evaluation.coqa, path("coqa.json"));
  EXPECT_EQ(spec.evaluation.options.generation.stop, std::vector<std::string>{"\nQ:"});
  EXPECT_FALSE(spec.evaluation.options.add_bos);
  EXPECT_EQ(spec.evaluation.bootstrap_resamples, 10000);
  EXPECT_FALSE(spec.evaluation.limit.has_value());
  EXPECT_EQ(spec.benchmarks.options.batch_sizes, (std::vector<int>{1, 4, 8, 16}));
  EXPECT_EQ(spec.benchmarks.options.throughput_prompt_tokens, 128);
  EXPECT_EQ(spec.benchmarks.options.warmup, 2);
  EXPECT_EQ(spec.spec_hash, sha256_hex(valid_job()));
  EXPECT_EQ(spec.text, valid_job());
  // The GPTQ/AWQ cache sits beside the store in use, also one given with --store.
  EXPECT_EQ(cache_dir_of(spec, ""), path("qsweep_cache"));
  EXPECT_EQ(cache_dir_of(spec, path("elsewhere/s.h5")), path("elsewhere/qsweep_cache"));
}

TEST_F(SweepSpecTest, UnknownTopLevelKeySuggestsClosestKey) {
  expect_error(with_line(valid_job(), 2, "modle: model"), 2, "modle",
               "did you mean 'model'?");
}

TEST_F(SweepSpecTest, UnknownNestedKeySuggestsClosestKey) {
  expect_error(with_line(valid_job(), 9, "  shard_sise: 4"), 9, "evaluation.shard_sise",
               "did you mean 'shard_size'?");
}

TEST_F(SweepSpecTest, UnknownConfigKeySuggestsClosestKey) {
  expect_error(with_line(valid_job(), 6, "  - {name: bf16, dtpye: bf16}"), 6, "configs[1].dtpye",
               "did you mean 'dtype'?");
}

TEST_F(SweepSpecTest, ConfigModelResolvesAgainstTheJobFileAndMustBeAModelDirectory) {
  const SweepSpec spec = load(with_line(valid_job(), 6, "  - {name: bf16, dtype: bf16, model: model}"));
  EXPECT_EQ(spec.configs[1].model, path("model"));
  EXPECT_TRUE(spec.configs[0].model.empty());
  expect_error(with_line(valid_job(), 6, "  - {name: bf16, dtype: bf16, model: nowhere}"), 6,
               "configs[1].model", "is not a Hugging Face model directory (no config.json)");
}

TEST_F(SweepSpecTest, NegativeShardSizeIsRejectedWithTheValueGiven) {
  const std::string message = error_of(with_line(valid_job(), 9, "  shard_size: -1"));
  EXPECT_EQ(message, path("job.yaml") +
                         ":9: key 'evaluation.shard_size': must be a positive integer, got -1");
}

TEST_F(SweepSpecTest, WrongTypeNamesKeyAndValue) {
  expect_error(with_line(valid_job(), 10, "  max_new_tokens: lots"), 10,
               "evaluation.max_new_tokens", "must be an integer, got 'lots'");
  expect_error(with_line(valid_job(), 12, "  prefill_tokens: [1, 2]"), 12,
               "benchmarks.prefill_tokens", "must be an integer, got a list");
}

TEST_F(SweepSpecTest, UnknownDtypeSuggestsClosest) {
  expect_error(with_line(valid_job(), 6, "  - {name: bf16, dtype: bf61}"), 6, "configs[1].dtype",
               "did you mean 'bf16'?");
}

TEST_F(SweepSpecTest, MissingRequiredKeyIsNamed) {
  expect_error(with_line(valid_job(), 2, ""), 1, "model", "is required but missing");
  expect_error(with_line(valid_job(), 8, ""), 8, "evaluation.coqa", "is required but missing");
}

TEST_F(SweepSpecTest, MissingModelDirectoryIsReported) {
  expect_error(with_line(valid_job(), 2, "model: no-such-model"), 2, "model",
               "directory '" + path("no-such-model") + "' does not exist");
}

TEST_F(SweepSpecTest, ModelDirectoryWithoutConfigJsonIsReported) {
  std::filesystem::create_directories(dir_ / "empty");
  expect_error(with_line(valid_job(), 2, "model: empty"), 2, "model", "has no config.json");
}

TEST_F(SweepSpecTest, MissingCoqaFileIsReported) {
  expect_error(with_line(valid_job(), 8, "  coqa: missing.json"), 8, "evaluation.coqa",
               "file '" + path("missing.json") + "' does not exist");
}

TEST_F(SweepSpecTest, UnknownBaselineSuggestsAConfig) {
  expect_error(with_line(valid_job(), 3, "baseline: fp23"), 3, "baseline",
               "'fp23' is not a config of this sweep (did you mean 'fp32'?)");
}

TEST_F(SweepSpecTest, DuplicateConfigNamesAreRejected) {
  expect_error(with_line(valid_job(), 6, "  - {name: fp32, dtype: bf16}"), 6, "configs[1].name",
               "duplicate config name 'fp32' (first defined at " + path("job.yaml") + ":5)");
}

TEST_F(SweepSpecTest, ConfigNameThatCannotBeAGroupNameIsRejected) {
  expect_error(with_line(valid_job(), 6, "  - {name: a/b, dtype: bf16}"), 6, "configs[1].name",
               "may use only letters");
}

TEST_F(SweepSpecTest, GridExpandsToOneConfigPerValueInOrder) {
  const SweepSpec spec =
      load(with_line(valid_job(), 6, "  - {grid: {dtype: [fp16, bf16]}, name: \"half-{dtype}\"}"));
  ASSERT_EQ(spec.configs.size(), 3u);
  EXPECT_EQ(spec.configs[1].name, "half-fp16");
  EXPECT_EQ(spec.configs[1].dtype, DType::fp16);
  EXPECT_EQ(spec.configs[2].name, "half-bf16");
  EXPECT_EQ(spec.configs[2].dtype, DType::bf16);
}

TEST_F(SweepSpecTest, GridNameDefaultsToItsKeys) {
  const SweepSpec spec = load(with_line(valid_job(), 6, "  - grid: {dtype: [fp16, bf16]}"));
  EXPECT_EQ(spec.configs[1].name, "fp16");
  EXPECT_EQ(spec.configs[2].name, "bf16");
}

TEST_F(SweepSpecTest, GridTemplateWithoutAVaryingKeyIsRejected) {
  expect_error(with_line(valid_job(), 6, "  - {grid: {dtype: [fp16, bf16]}, name: half}"), 6,
               "configs[1].name", "lacks '{dtype}'");
}

TEST_F(SweepSpecTest, GridTemplateWithUnknownPlaceholderIsRejected) {
  expect_error(with_line(valid_job(), 6, "  - {grid: {dtype: [fp16]}, name: \"{bits}\"}"), 6,
               "configs[1].name", "uses '{bits}', which is not a grid key");
}

TEST_F(SweepSpecTest, GridWithUnknownKeyOrEmptyValuesIsRejected) {
  expect_error(with_line(valid_job(), 6, "  - {grid: {dtpe: [fp16]}}"), 6, "configs[1].grid.dtpe",
               "did you mean 'dtype'?");
  expect_error(with_line(valid_job(), 6, "  - {grid: {dtype: []}}"), 6, "configs[1].grid.dtype",
               "must be a non-empty list");
  expect_error(with_line(valid_job(), 6, "  - {grid: {dtype: [fp16, int3]}}"), 6,
               "configs[1].grid.dtype[1]", "must be one of fp32, fp16, bf16");
}

TEST_F(SweepSpecTest, PresetLoadsFromConfigDirAndAcceptsOverrides) {
  std::filesystem::create_directories(dir_ / "configs/precision");
  write("configs/precision/fp16.yaml", "name: fp16\ndtype: fp16\n");
  const SweepSpec spec = load(with_line(valid_job(), 6, "  - {preset: fp16, name: half}"));
  ASSERT_EQ(spec.configs.size(), 2u);
  EXPECT_EQ(spec.configs[1].name, "half");
  EXPECT_EQ(spec.configs[1].dtype, DType::fp16);
  const SweepSpec by_kind = load(with_line(valid_job(), 6, "  - {preset: precision/fp16}"));
  EXPECT_EQ(by_kind.configs[1].name, "fp16");
}

TEST_F(SweepSpecTest, UnknownPresetListsWhatExists) {
  std::filesystem::create_directories(dir_ / "configs/precision");
  write("configs/precision/fp16.yaml", "dtype: fp16\n");
  expect_error(with_line(valid_job(), 6, "  - {preset: fp61}"), 6, "configs[1].preset",
               "did you mean 'precision/fp16'?");
}

TEST_F(SweepSpecTest, BadKeyInPresetNamesThePresetFile) {
  std::filesystem::create_directories(dir_ / "configs/precision");
  write("configs/precision/fp16.yaml", "name: fp16\ndtipe: fp16\n");
  const std::string message = error_of(with_line(valid_job(), 6, "  - {preset: fp16}"));
  expect_contains(message, path("configs/precision/fp16.yaml") + ":2: key 'dtipe'");
}

TEST_F(SweepSpecTest, EnvironmentVariablesExpandInPaths) {
  ::setenv("QSWEEP_TEST_MODEL", path("model").c_str(), 1);
  EXPECT_EQ(load(with_line(valid_job(), 2, "model: ${QSWEEP_TEST_MODEL}")).model, path("model"));
  ::unsetenv("QSWEEP_TEST_MODEL");
  EXPECT_EQ(load(with_line(valid_job(), 2, "model: ${QSWEEP_TEST_MODEL:-model}")).model,
            path("model"));
  expect_error(with_line(valid_job(), 2, "model: ${QSWEEP_TEST_MODEL}"), 2, "model",
               "environment variable QSWEEP_TEST_MODEL is not set");
}

TEST_F(SweepSpecTest, DeviceMustBeAutoCpuOrCuda) {
  EXPECT_EQ(load(valid_job() + "device: cuda:1\n").device, "cuda:1");
  expect_error(valid_job() + "device: gpu\n", 15, "device", "must be one of auto, cpu, cuda");
}

TEST_F(SweepSpecTest, EmptyBatchSizesAreRejected) {
  expect_error(with_line(valid_job(), 14, "  batch_sizes: []"), 14, "benchmarks.batch_sizes",
               "at least one batch size");
}

TEST_F(SweepSpecTest, BenchmarkLongerThanTheModelContextIsRejected) {
  expect_error(with_line(valid_job(), 12, "  prefill_tokens: 512"), 12,
               "benchmarks.prefill_tokens", "exceeds the model's max_position_embeddings 256");
}

TEST_F(SweepSpecTest, ThroughputPromptLengthIsABenchmarkKey) {
  EXPECT_EQ(load(with_line(valid_job(), 14, "  throughput_prompt_tokens: 64"))
                .benchmarks.options.throughput_prompt_tokens,
            64);
  expect_error(with_line(valid_job(), 14, "  throughput_prompt_tokens: 0"), 14,
               "benchmarks.throughput_prompt_tokens", "");
  expect_error(with_line(valid_job(), 14, "  throughput_prompt_tokens: 250"), 14,
               "benchmarks.throughput_prompt_tokens",
               "throughput_prompt_tokens + decode_tokens = 258 exceeds the model's "
               "max_position_embeddings 256");
}

// A config's own model is held to the same context as the sweep's.
TEST_F(SweepSpecTest, BenchmarkLongerThanAConfigsOwnModelContextIsRejected) {
  std::filesystem::create_directories(path("short"));
  write("short/config.json", R"({"model_type": "llama", "max_position_embeddings": 32,
      "vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2})");
  const std::string message =
      error_of(with_line(valid_job(), 6, "  - {name: bf16, dtype: bf16, model: short}"));
  expect_contains(message, "key 'benchmarks.prefill_tokens'");
  expect_contains(message, "exceeds the model's max_position_embeddings 32 (" + path("short/config.json"));
}

TEST_F(SweepSpecTest, TooFewBootstrapResamplesAreRejected) {
  expect_error(with_line(valid_job(), 10, "  bootstrap_resamples: 100"), 10,
               "evaluation.bootstrap_resamples", "must be an integer >= 1000, got 100");
}

TEST_F(SweepSpecTest, CompareMustNameConfigs) {
  expect_error(valid_job() + "compare:\n  - [fp32, bf61]\n", 16, "compare[0][1]",
               "did you mean 'bf16'?");
}

TEST_F(SweepSpecTest, InvalidYamlReportsTheLine) {
  const std::string message = error_of(with_line(valid_job(), 9, "  shard_size: [4"));
  expect_contains(message, path("job.yaml") + ":");
  expect_contains(message, "invalid YAML");
}

TEST_F(SweepSpecTest, NothingToRunIsRejected) {
  const std::string job = valid_job().substr(0, valid_job().find("evaluation:")) +
                          "evaluation: {enabled: false}\nbenchmarks: {enabled: false}\n";
  expect_contains(error_of(job), "nothing to run");
}

TEST_F(SweepSpecTest, UnitsAreGroupedByConfigWithStableKeys) {
  const SweepSpec spec = load(valid_job());
  const std::vector<WorkUnit> units = expand_units(spec, 10);
  ASSERT_EQ(units.size(), 8u);  // per config: 3 CoQA shards (4 + 4 + 2 stories) and a benchmark
  EXPECT_EQ(units[0].key, "fp32/coqa/0000");
  EXPECT_EQ(units[2].key, "fp32/coqa/0002");
  EXPECT_EQ(units[2].begin, 8u);
  EXPECT_EQ(units[2].end, 10u);
  EXPECT_EQ(units[3].key, "fp32/bench");
  EXPECT_EQ(units[3].kind, UnitKind::bench);
  EXPECT_EQ(units[4].key, "bf16/coqa/0000");
  EXPECT_EQ(units[4].config, "bf16");
}

TEST_F(SweepSpecTest, UnitsRespectLimitAndPutSanityFirst) {
  const std::string job = with_line(valid_job(), 9, "  shard_size: 4\n  limit: 5\n"
                                                    "  sanity_prompts: [\"Hello\"]");
  const std::vector<WorkUnit> units = expand_units(load(job), 500);
  ASSERT_EQ(units.size(), 8u);
  EXPECT_EQ(units[0].key, "fp32/sanity");
  EXPECT_EQ(units[2].key, "fp32/coqa/0001");
  EXPECT_EQ(units[2].end, 5u);
}

TEST_F(SweepSpecTest, FingerprintIgnoresWhereThingsGoButNotWhatIsMeasured) {
  const std::string base = results_fingerprint(load(valid_job()));
  EXPECT_EQ(results_fingerprint(load(valid_job() + "log_dir: elsewhere\nstore: x.h5\n")), base);
  const std::string changed = results_fingerprint(load(with_line(valid_job(), 14, "  repeats: 3")));
  EXPECT_NE(changed, base);
  expect_contains(changed, "benchmarks.repeats=3");
}

TEST_F(SweepSpecTest, FingerprintHoldsTheThroughputPromptLength) {
  const std::string base = results_fingerprint(load(valid_job()));
  expect_contains(base, "benchmarks.throughput_prompt_tokens=128");
  const std::string changed =
      results_fingerprint(load(with_line(valid_job(), 14, "  throughput_prompt_tokens: 16")));
  expect_contains(changed, "benchmarks.throughput_prompt_tokens=16");
}

}  // namespace

// --- Quantization keys: parsed into QuantConfig, refused before any work when they make no
// sense, with the file, line and key. The fixture model is 64 wide (hidden, heads x head_dim)
// with an intermediate size of 128.

TEST_F(SweepSpecTest, QuantConfigsParseEveryMethodsParameters) {
  std::string job = with_line(valid_job(), 6,
      "  - {name: nf4, method: bnb_nf4, dtype: bf16, blocksize: 128, double_quant: true}\n"
      "  - {name: int8, method: llm_int8, dtype: bf16, threshold: 4.5, compute_dtype: fp16}\n"
      "  - {name: rtn3, method: rtn, dtype: bf16, bits: 3, group_size: 32, sym: false}");
  const SweepSpec spec = load(job);
  ASSERT_EQ(spec.configs.size(), 4u);
  const QuantConfig& nf4 = spec.configs[1].quant;
  EXPECT_EQ(nf4.method, QuantMethod::bnb_nf4);
  EXPECT_EQ(nf4.blocksize, 128);
  EXPECT_TRUE(nf4.double_quant);
  const QuantConfig& int8 = spec.configs[2].quant;
  EXPECT_EQ(int8.method, QuantMethod::llm_int8);
  EXPECT_DOUBLE_EQ(int8.threshold, 4.5);
  EXPECT_EQ(int8.compute_dtype, DType::fp16);
  const QuantConfig& rtn = spec.configs[3].quant;
  EXPECT_EQ(rtn.bits, 3);
  EXPECT_EQ(rtn.group_size, 32);
  EXPECT_FALSE(rtn.sym);
  EXPECT_EQ(config_fingerprint(spec.configs[3]),
            "method=rtn\ndtype=bf16\nbits=3\ngroup_size=32\nsym=false\nquantize_lm_head=false\n");
}

TEST_F(SweepSpecTest, UnquantizedConfigsKeepTheirOldFingerprint) {
  EXPECT_EQ(config_fingerprint(load(valid_job()).configs[1]), "dtype=bf16\n");
}

TEST_F(SweepSpecTest, BadQuantParametersAreRefusedWithTheKeyAndWhatIsValid) {
  expect_error(with_line(valid_job(), 6, "  - {name: q, method: rtn, dtype: bf16, bits: 5}"), 6,
               "configs[1].bits", "must be one of 2, 3, 4, 8, got 5");
  expect_error(with_line(valid_job(), 6, "  - {name: q, method: rtn, dtype: bf16, group_size: 0}"),
               6, "configs[1].group_size", "must be one of 32, 64, 128, -1, got 0");
  expect_error(
      with_line(valid_job(), 6, "  - {name: q, method: bnb_nf4, dtype: bf16, blocksize: 48}"), 6,
      "configs[1].blocksize", "must be one of 32, 64, 128, 256, 512, 1024, 2048, 4096, got 48");
  expect_error(with_line(valid_job(), 6, "  - {name: q, method: bnb_nf5, dtype: bf16}"), 6,
               "configs[1].method", "did you mean 'bnb_nf4'?");
  expect_error(
      with_line(valid_job(), 6, "  - {name: q, method: llm_int8, dtype: bf16, threshold: -1}"), 6,
      "configs[1].threshold", "must be at least 0");
}

TEST_F(SweepSpecTest, ParameterOfAnotherMethodIsRefused) {
  expect_error(
      with_line(valid_job(), 6, "  - {name: q, method: rtn, dtype: bf16, double_quant: true}"), 6,
      "configs[1].double_quant",
      "does not apply to method 'rtn' (rtn takes bits, group_size, sym, quantize_lm_head); it is "
      "a parameter of bnb_nf4, bnb_fp4");
  expect_error(with_line(valid_job(), 6, "  - {name: q, dtype: bf16, bits: 4}"), 6,
               "configs[1].bits", "does not apply to method 'none'");
}

TEST_F(SweepSpecTest, GridOverAMethodParameterChecksEachPoint) {
  const SweepSpec spec = load(with_line(
      valid_job(), 6, "  - {grid: {bits: [2, 4]}, method: rtn, dtype: bf16, group_size: 32}"));
  ASSERT_EQ(spec.configs.size(), 3u);
  EXPECT_EQ(spec.configs[1].name, "2");
  EXPECT_EQ(spec.configs[2].quant.bits, 4);
  expect_error(with_line(valid_job(), 6, "  - {grid: {double_quant: [true, false]}, method: rtn, "
                                         "dtype: bf16}"),
               6, "configs[1].grid.double_quant[0]", "does not apply to method 'rtn'");
}

TEST_F(SweepSpecTest, GroupSizeThatDoesNotDivideTheModelsLayersIsRefused) {
  const std::string message =
      error_of(with_line(valid_job(), 6, "  - {name: g128, method: rtn, dtype: bf16}"));
  EXPECT_NE(message.find("job.yaml:6: config 'g128': group_size 128 does not divide the input "
                         "size 64"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("or -1 for one group per row"), std::string::npos) << message;
}

TEST_F(SweepSpecTest, CalibratedMethodsNeedACalibrationTextAndFingerprintIt) {
  const std::string message =
      error_of(with_line(valid_job(), 6, "  - {name: g, method: gptq, dtype: bf16, group_size: 32}"));
  expect_contains(message, "config 'g': method 'gptq' needs calibration data");
  expect_contains(message, "data/calibration/moby_dick.txt");

  write("calib.txt", "Call me Ishmael.");
  const SweepSpec spec = load(with_line(
      valid_job(), 6,
      "  - {name: g, method: gptq, dtype: bf16, group_size: 32, desc_act: true, "
      "calibration: {text: calib.txt, samples: 8, seq_len: 64, seed: 3}}"));
  const QuantConfig& q = spec.configs[1].quant;
  EXPECT_EQ(q.calibration.text, path("calib.txt"));
  EXPECT_EQ(q.calibration.samples, 8);
  EXPECT_TRUE(q.desc_act);
  expect_contains(config_fingerprint(spec.configs[1]),
                  "calibration=sha256:" + sha256_hex("Call me Ishmael.") +
                      " samples=8 seq_len=64 seed=3\n");

  expect_error(with_line(valid_job(), 6,
                         "  - {name: g, method: awq, dtype: bf16, group_size: 32, "
                         "calibration: {text: missing.txt}}"),
               6, "configs[1].calibration.text", "does not exist");
  expect_error(with_line(valid_job(), 6,
                         "  - {name: g, method: awq, dtype: bf16, group_size: 32, desc_act: true, "
                         "calibration: {text: calib.txt}}"),
               6, "configs[1].desc_act", "does not apply to method 'awq'");
  expect_error(with_line(valid_job(), 6,
                         "  - {name: g, method: gptq, dtype: bf16, group_size: 32, "
                         "calibration: {text: calib.txt, sample: 8}}"),
               6, "configs[1].calibration.sample", "samples");
  expect_error(with_line(valid_job(), 6,
                         "  - {name: g, method: gptq, dtype: bf16, group_size: 32, damp_percent: 1.5, "
                         "calibration: {text: calib.txt}}"),
               6, "configs[1].damp_percent", "must be in [0, 1)");
}

// yaml-cpp keeps the first of two equal keys; a job that says a value twice is refused, at the
// second one, whether it is a top-level key, a nested one or one inside a config's flow mapping.
TEST_F(SweepSpecTest, KeyWrittenTwiceInOneMappingIsRefusedNamingItsLine) {
  std::string twice_nested = valid_job();
  twice_nested.insert(twice_nested.find("  max_new_tokens: 16\n"), "  shard_size: 2\n");
  expect_error(twice_nested, 10, "evaluation.shard_size", "appears twice in the same mapping (first at line 9)");
  expect_error(valid_job() + "name: u\n", 15, "name", "appears twice");
  expect_error(with_line(valid_job(), 6, "  - {name: bf16, dtype: bf16, dtype: fp16}"), 6,
               "configs[1].dtype", "appears twice");
  // The same key in two different mappings is fine.
  EXPECT_EQ(load(valid_job()).configs.size(), 2u);
}
