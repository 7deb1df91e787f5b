// `method: from_checkpoint` at plan time: the config's model directory must hold a
// quantization_config qsweep reads, and a pre-quantized model runs only as stored.
#include "sweep_fixture.h"

#include <gtest/gtest.h>

using namespace qsweep;

namespace {

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "message: " << text << "\nlacks: " << part;
}

class FromCheckpoint : public qsweep::testing::TempSweep {
 protected:
  // DIR/config.json: the fixture's model with `quantization_config` (a JSON object).
  void make_quantized(const std::string& dir, const std::string& quantization_config) const {
    std::filesystem::create_directories(dir_ / dir);
    write(dir + "/config.json",
          R"({"model_type": "llama", "max_position_embeddings": 256, "vocab_size": 128,
              "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2,
              "quantization_config": )" + quantization_config + "}");
    write(dir + "/tokenizer.json", "{}");
  }
  static std::string job_with(const std::string& config_line) {
    return qsweep::testing::with_line(valid_job(), 6, config_line);
  }
};

const char* kGptq = R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "sym": true})";

}  // namespace

TEST_F(FromCheckpoint, RunsAConfigWhoseModelHoldsASupportedQuantizationConfig) {
  make_quantized("gptq", kGptq);
  const SweepSpec spec =
      load(job_with("  - {name: gptq, method: from_checkpoint, dtype: bf16, model: gptq}"));
  ASSERT_EQ(spec.configs.size(), 2u);
  EXPECT_EQ(spec.configs[1].quant.method, QuantMethod::from_checkpoint);
  EXPECT_EQ(spec.configs[1].model, path("gptq"));
}

TEST_F(FromCheckpoint, NeedsAQuantizedCheckpointNamingTheConfigJson) {
  const std::string e = error_of(job_with("  - {name: q, method: from_checkpoint, dtype: bf16}"));
  expect_contains(e, "job.yaml:6");
  expect_contains(e, "config 'q': method 'from_checkpoint' needs a pre-quantized checkpoint, but " +
                         path("model/config.json") + " has no quantization_config");
}

TEST_F(FromCheckpoint, TakesNoQuantizationParameters) {
  make_quantized("gptq", kGptq);
  expect_contains(
      error_of(job_with("  - {name: q, method: from_checkpoint, dtype: bf16, model: gptq, bits: 4}")),
      "key 'configs[1].bits': does not apply to method 'from_checkpoint'");
}

TEST_F(FromCheckpoint, APreQuantizedModelIsNotQuantizedAgain) {
  make_quantized("gptq", kGptq);
  const std::string e =
      error_of(job_with("  - {name: q, method: rtn, bits: 4, group_size: 32, dtype: bf16, model: gptq}"));
  expect_contains(e, path("gptq/config.json") + " holds a pre-quantized checkpoint (gptq");
  expect_contains(e, "use method: from_checkpoint");
}

TEST_F(FromCheckpoint, UnsupportedQuantizationConfigFailsAtPlanNamingFileAndKey) {
  make_quantized("hqq", R"({"quant_method": "hqq", "nbits": 4})");
  const std::string e =
      error_of(job_with("  - {name: q, method: from_checkpoint, dtype: bf16, model: hqq}"));
  expect_contains(e, path("hqq/config.json") + ": key 'quantization_config.quant_method' is 'hqq'");
  expect_contains(e, "supported: quant_method 'bitsandbytes'");
  expect_contains(e, "'awq' (version gemm)");
}
