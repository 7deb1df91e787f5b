#pragma once
// A throw-away sweep for spec and store tests: a temporary directory with a fake model (config.json
// and tokenizer.json), a copy of the shipped CoQA sample, and helpers to write job files there.
#include "qsweep/util/error.h"
#include "qsweep/sweep/sweep_spec.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace qsweep::testing {

class TempSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("qsweep-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "model");
    write("model/config.json", R"({"model_type": "llama", "max_position_embeddings": 256,
        "vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2})");
    write("model/tokenizer.json", "{}");
    std::filesystem::copy_file(
        QSWEEP_SOURCE_DIR "/data/coqa/coqa_dev_format_sample_10stories.json", dir_ / "coqa.json");
  }
  void TearDown() override { if (!std::getenv("QSWEEP_KEEP")) std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return path(name);
  }

  // A valid job: every key a test may want to break is on its own, known line.
  static std::string valid_job() {
    return "name: t\n"                          // 1
           "model: model\n"                     // 2
           "baseline: fp32\n"                   // 3
           "configs:\n"                         // 4
           "  - {name: fp32, dtype: fp32}\n"    // 5
           "  - {name: bf16, dtype: bf16}\n"    // 6
           "evaluation:\n"                      // 7
           "  coqa: coqa.json\n"                // 8
           "  shard_size: 4\n"                  // 9
           "  max_new_tokens: 16\n"             // 10
           "benchmarks:\n"                      // 11
           "  prefill_tokens: 32\n"             // 12
           "  decode_tokens: 8\n"               // 13
           "  repeats: 2\n";                    // 14
  }

  SweepSpec load(const std::string& job_text) const {
    return load_sweep_spec(write("job.yaml", job_text));
  }

  // The message of the Error that loading job_text throws ("" if it loads).
  std::string error_of(const std::string& job_text) const {
    try {
      load(job_text);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  std::filesystem::path dir_;
};

// valid_job() with one line replaced (1-based), or removed when `line_text` is empty.
inline std::string with_line(std::string job, int line, const std::string& line_text) {
  size_t start = 0;
  for (int i = 1; i < line; ++i) start = job.find('\n', start) + 1;
  const size_t end = job.find('\n', start) + 1;
  job.replace(start, end - start, line_text.empty() ? "" : line_text + "\n");
  return job;
}

}  // namespace qsweep::testing
