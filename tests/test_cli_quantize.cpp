// `qsweep quantize` as a user runs it: the built executable on a made model and the shipped
// presets, its output loaded back and generated from.
#include "qsweep/model/model.h"
#include "qsweep/util/text.h"
#include "test_helpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace qsweep;
namespace fs = std::filesystem;

namespace {

// Runs `qsweep ARGS`, returning its exit code and what it printed.
int run_qsweep(const std::string& args, std::string& output) {
  static const std::string log = make_temp_dir("cli-quantize-log") + "/out.txt";
  const int status = std::system((QSWEEP_BINARY_DIR "/qsweep " + args + " > " + log + " 2>&1").c_str());
  output = read_file(log);
  return WEXITSTATUS(status);
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "output:\n" << text << "\nlacks: " << part;
}

// A tiny model with the Llama 3 tokenizer, saved in float16 as the presets' dtype is.
const std::string& made_model() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("cli-quantize-model");
    std::string out;
    const int rc = run_qsweep("make-model --preset tiny --dtype fp16 --seed 3 --tokenizer " QSWEEP_SOURCE_DIR
                          "/.cache/tokenizers/llama3/tokenizer.json --out " + d, out);
    if (rc != 0) throw std::runtime_error("make-model failed: " + out);
    return d;
  }();
  return dir;
}

std::string preset(const std::string& name) {
  return QSWEEP_SOURCE_DIR "/configs/quant/" + name + ".yaml";
}

std::string write_config(const std::string& text) {
  const std::string path = make_temp_dir("cli-quantize-config") + "/config.yaml";
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(CliQuantize, Nf4PresetWritesABitsandbytesCheckpointThatLoadsAndGenerates) {
  const std::string out = make_temp_dir("cli-quantize-nf4");
  std::string text;
  ASSERT_EQ(run_qsweep("quantize --model " + made_model() + " --config " + preset("nf4_dq_fp16") +
                       " --out " + out, text), 0) << text;
  expect_contains(text, "bits per weight");
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(out + "/generation_config.json"));
  const nlohmann::json config = nlohmann::json::parse(read_file(out + "/config.json"));
  EXPECT_EQ(config["quantization_config"]["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(config["quantization_config"]["bnb_4bit_use_double_quant"], true);
  EXPECT_EQ(config["torch_dtype"], "float16");

  const Model m = load_model(out, {DType::fp32, at::kCPU});
  const auto& q = std::get<Bnb4Weight>(m.layers[0].q.weight);
  EXPECT_TRUE(q.double_quant);
  EXPECT_EQ(q.compute_dtype, at::kHalf);
  ASSERT_EQ(run_qsweep("generate --model " + out + " --dtype fp32 --device cpu --prompt Hello "
                   "--max-new-tokens 3", text), 0) << text;
}

TEST(CliQuantize, RtnAndInt8ConfigsWriteGptqAndBitsandbytes8bit) {
  const std::string rtn = write_config("method: rtn\ndtype: fp16\nbits: 4\ngroup_size: 32\nsym: false\n");
  const std::string gptq = make_temp_dir("cli-quantize-rtn");
  std::string text;
  ASSERT_EQ(run_qsweep("quantize --model " + made_model() + " --config " + rtn + " --out " + gptq, text), 0)
      << text;
  EXPECT_TRUE(std::holds_alternative<IntGroupWeight>(
      load_model(gptq, {DType::fp32, at::kCPU}).layers[1].down.weight));

  const std::string int8 = make_temp_dir("cli-quantize-int8");
  ASSERT_EQ(run_qsweep("quantize --model " + made_model() + " --config " + preset("int8_fp16") +
                       " --out " + int8, text), 0) << text;
  EXPECT_TRUE(std::holds_alternative<Int8RowWeight>(
      load_model(int8, {DType::fp32, at::kCPU}).layers[0].gate.weight));
}

TEST(CliQuantize, GptqAndAwqCalibrateOnTheTextAndWriteGptqLayout) {
  for (const std::string method : {"gptq", "awq"}) {
    SCOPED_TRACE(method);
    const std::string config = write_config(
        "method: " + method + "\ndtype: fp32\nbits: 4\ngroup_size: 32\ncalibration: {text: " +
        QSWEEP_SOURCE_DIR "/data/calibration/moby_dick.txt, samples: 4, seq_len: 64}\n");
    const std::string out = make_temp_dir("cli-quantize-" + method);
    std::string text;
    ASSERT_EQ(run_qsweep("quantize --model " + made_model() + " --config " + config + " --out " +
                         out, text), 0) << text;
    expect_contains(text, "output error below RTN's");
    const nlohmann::json written = nlohmann::json::parse(read_file(out + "/config.json"));
    EXPECT_EQ(written["quantization_config"]["quant_method"], "gptq");
    EXPECT_TRUE(std::holds_alternative<IntGroupWeight>(
        load_model(out, {DType::fp32, at::kCPU}).layers[0].v.weight));
  }
}

TEST(CliQuantize, RefusesMethodsWithoutAFormatAndQuantizedInputsWithExitCode2) {
  const std::string out = make_temp_dir("cli-quantize-refused");
  std::string text;
  const std::string none = write_config("method: none\ndtype: fp16\n");
  EXPECT_EQ(run_qsweep("quantize --model " + made_model() + " --config " + none + " --out " + out, text), 2);
  expect_contains(text, none + ": key 'method': 'none' cannot be written as a checkpoint");

  // The config file is parsed as the job file's presets are: a typo names file, line and key.
  const std::string typo = write_config("method: rtn\ndtype: fp16\nbitz: 4\n");
  EXPECT_EQ(run_qsweep("quantize --model " + made_model() + " --config " + typo + " --out " + out, text), 2);
  expect_contains(text, typo + ":3: key 'bitz'");

  ASSERT_EQ(run_qsweep("quantize --model " + made_model() + " --config " + preset("nf4_fp16") +
                       " --out " + out, text), 0) << text;
  const std::string again = make_temp_dir("cli-quantize-again");
  EXPECT_EQ(run_qsweep("quantize --model " + out + " --config " + preset("nf4_fp16") + " --out " + again,
                   text), 2);
  expect_contains(text, out + "/config.json: the model is already quantized (bitsandbytes 4-bit)");
}
