// `qsweep plan` and `qsweep show` as a user runs them: the built executable on a real job file and
// store, checked by what they print.
#include "qsweep/store/store.h"
#include "qsweep/util/text.h"
#include "sweep_fixture.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <unistd.h>

using namespace qsweep;

namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(text.substr(start, end - start));
  return lines;
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "output:\n" << text << "\nlacks: " << part;
}

// `plan` and `run` check the model's weights and tokenizer before anything else, so these tests
// run on a real model: made once per test binary by the built qsweep (the tiny preset with the
// Llama-3 tokenizer), its files linked into each test's model directory.
struct MadeModel {
  std::string dir;
  ~MadeModel() { std::filesystem::remove_all(dir); }
};

const std::string& made_model() {
  static const MadeModel model{[] {
    const std::string d = (std::filesystem::temp_directory_path() /
                           ("qsweep-cli-store-model-" + std::to_string(::getpid())))
                              .string();
    const std::string command = QSWEEP_BINARY_DIR "/qsweep make-model --preset tiny --tokenizer "
                                QSWEEP_SOURCE_DIR "/.cache/tokenizers/llama3/tokenizer.json --out " +
                                d + " > /dev/null 2>&1";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
    return d;
  }()};
  return model.dir;
}

class CliStoreTest : public qsweep::testing::TempSweep {
 protected:
  void SetUp() override {
    TempSweep::SetUp();
    for (const auto& f : std::filesystem::directory_iterator(made_model())) {
      const std::filesystem::path link = dir_ / "model" / f.path().filename();
      std::filesystem::remove(link);
      std::filesystem::create_symlink(f.path(), link);
    }
  }

  // Replaces a linked model file by a file of its own (the made model stays as it is).
  void replace_model_file(const std::string& name, const std::string& text) const {
    std::filesystem::remove(dir_ / "model" / name);
    write("model/" + name, text);
  }

  // Runs `qsweep ARGS`, returning its exit code and what it printed.
  int qsweep(const std::string& args, std::string& output) const {
    const std::string out = path("out.txt");
    const int status =
        std::system((QSWEEP_BINARY_DIR "/qsweep " + args + " > " + out + " 2>&1").c_str());
    output = read_file(out);
    return WEXITSTATUS(status);
  }

  // A store with one shard done, one failed and metrics for bf16.
  std::string make_store(const SweepSpec& spec) const {
    Store store = open_store_for_writing(spec.store, spec, expand_units(spec, 10));
    SampleRecord s;
    s.id = "3dr23u6we5exclen4th8uq9rb42tel";
    s.golds = {"white"};
    s.em = 1;
    add_samples(store, {"fp32/coqa/0000", 1, "node1", 2.0}, {s, s});
    add_unit_error(store, {"bf16/bench", 2, "node2", 0.5}, "CUDA out of memory");
    ConfigMetrics m;
    m.config = "bf16";
    m.em = {2, 0.5, 0.5, {0, 1}, {0.25, 0.75}};
    m.em_vs_baseline = PairedComparison{"fp32", 2, -0.5, {-1, 0}, 0.04};
    set_metrics(store, m, "baseline=fp32");
    save_store(store);
    return spec.store;
  }
};

TEST_F(CliStoreTest, PlanListsConfigsUnitsAndWhatTheStoreHolds) {
  const SweepSpec spec = load(valid_job());
  std::string out;
  ASSERT_EQ(qsweep("plan " + spec.path, out), 0) << out;
  expect_contains(out, "(10 stories)");
  expect_contains(out, "configs (2, baseline fp32)");
  expect_contains(out, "benchmarks prefill 32 tokens, decode 8 tokens, throughput prompt 128 "
                       "tokens, batch sizes 1,4,8,16, warmup 2, repeats 2");
  expect_contains(out, "fp32/coqa/0002               stories 8-9      todo");
  expect_contains(out, "does not exist yet");
  expect_contains(out, "done 0, failed 0, to do 8");

  make_store(spec);
  ASSERT_EQ(qsweep("plan " + spec.path, out), 0) << out;
  expect_contains(out, "(resumable");
  expect_contains(out, "fp32/coqa/0000               stories 0-3      done    rank 1 on node1");
  expect_contains(out, "done 1, failed 1, to do 6");
}

TEST_F(CliStoreTest, PlanSaysWhenTheStoreCannotBeResumed) {
  make_store(load(valid_job()));
  const SweepSpec changed = load(qsweep::testing::with_line(valid_job(), 14, "  repeats: 9"));
  std::string out;
  ASSERT_EQ(qsweep("plan " + changed.path, out), 2) << out;
  expect_contains(out, "CANNOT be resumed by this job: benchmarks.repeats was 2, now 9");
  expect_contains(out, "units (");  // the plan itself is still printed
}

TEST_F(CliStoreTest, PlanRejectsABadJobWithExitCode2) {
  std::string out;
  EXPECT_EQ(qsweep("plan " + write("job.yaml", "modle: x\n"), out), 2);
  expect_contains(out, "job.yaml:1: key 'modle'");
}

TEST_F(CliStoreTest, ShowPrintsMetricsErrorsAndMissingUnitsIn120Columns) {
  const std::string store = make_store(load(valid_job()));
  std::string out;
  ASSERT_EQ(qsweep("show " + store, out), 0) << out;
  expect_contains(out, "sweep 't'");
  expect_contains(out, "bf16/bench (rank 2 on node2): CUDA out of memory");
  expect_contains(out, "missing units (7 of 8)");
  expect_contains(out, "bf16/bench (failed)");
  expect_contains(out, "b1 ms/tok");
  expect_contains(out, "decode at batch 1, median");
  for (const std::string& line : split_lines(out)) {
    EXPECT_LE(line.size(), 120u) << line;
    // The baseline is not compared with itself.
    if (line.rfind("fp32 ", 0) == 0) expect_contains(line, " baseline ");
    if (line.rfind("bf16 ", 0) == 0) expect_contains(line, "-0.500");
  }
}

TEST_F(CliStoreTest, ShowWideHasEveryIntervalAndPValue) {
  const std::string store = make_store(load(valid_job()));
  std::string out;
  ASSERT_EQ(qsweep("show --wide " + store, out), 0) << out;
  expect_contains(out, "0.500 [0.250,0.750]");
  expect_contains(out, "-0.500 [-1.000,+0.000] p=0.040");
  expect_contains(out, "done/failed/todo");
}

TEST_F(CliStoreTest, ShowFormatsCarryTheSameRows) {
  const std::string store = make_store(load(valid_job()));
  std::string out;
  ASSERT_EQ(qsweep("show --format json " + store, out), 0) << out;
  const nlohmann::json rows = nlohmann::json::parse(out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["config"], "fp32");
  EXPECT_EQ(rows[0]["is_baseline"], true);
  EXPECT_TRUE(rows[0]["em_delta"].is_null());
  EXPECT_EQ(rows[1]["em_p"], 0.04);
  EXPECT_EQ(rows[1]["em_lo"], 0.25);
  ASSERT_EQ(qsweep("show --format csv " + store, out), 0) << out;
  const std::vector<std::string> lines = split_lines(out);
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0].rfind("config,is_baseline,samples,em,", 0), 0u) << lines[0];
  EXPECT_EQ(lines[2].rfind("bf16,false,", 0), 0u) << lines[2];
  ASSERT_EQ(qsweep("show --format md " + store, out), 0) << out;
  EXPECT_EQ(out.rfind("| config", 0), 0u) << out;
  expect_contains(out, "| :---");
  expect_contains(out, "| -0.500 [-1.000,+0.000] p=0.040 |");
}

TEST_F(CliStoreTest, ShowOfAMissingOrUnreadableStoreExits2AndSaysWhy) {
  std::string out;
  EXPECT_EQ(qsweep("show " + path("nowhere.h5"), out), 2) << out;
  expect_contains(out, "no results store at");
  EXPECT_EQ(qsweep("show " + write("not_a_store.h5", "hello\n"), out), 2) << out;
  expect_contains(out, "cannot be read as a qsweep results store");
}

}  // namespace

// A tokenizer.json that is not a tokenizer is refused before any unit (and before the store is
// made): exit code 2 and one message naming the file, rather than every rank leaving the sweep.
TEST_F(CliStoreTest, RunWithABrokenTokenizerIsRefusedBeforeAnyUnit) {
  replace_model_file("tokenizer.json", "{}");
  const SweepSpec spec = load(valid_job());
  std::string out;
  EXPECT_EQ(qsweep("run " + spec.path, out), 2) << out;
  expect_contains(out, "qsweep: error: " + path("model/tokenizer.json"));
  EXPECT_EQ(out.find("units planned"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(spec.store));
  EXPECT_EQ(qsweep("plan " + spec.path, out), 2) << out;
  expect_contains(out, path("model/tokenizer.json"));
}

// plan is often run on a login node without the job's GPU: it says so and goes on (run refuses).
TEST_F(CliStoreTest, PlanSaysWhenThisMachineLacksTheJobsDevice) {
  if (std::filesystem::exists("/dev/nvidia0")) GTEST_SKIP() << "this machine has a GPU";
  const SweepSpec spec = load("device: cuda\n" + valid_job());
  std::string out;
  ASSERT_EQ(qsweep("plan " + spec.path, out), 0) << out;
  expect_contains(out, "device     not on this machine: device 'cuda' was asked for");
  EXPECT_EQ(qsweep("run " + spec.path, out), 2) << out;
  expect_contains(out, "qsweep: error: device 'cuda' was asked for");
}

// Values that make no sense are refused by name before any model is loaded.
TEST_F(CliStoreTest, NonsenseCountsOnTheCommandLineAreRefusedByName) {
  std::string out;
  const std::string eval = "eval --model " + path("model") + " --coqa " + path("coqa.json");
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {eval + " --batch-size 0", "--batch-size: must be an integer >= 1, got 0"},
           {eval + " --limit -1", "--limit: must be an integer >= 1, got -1"},
           {eval + " --max-new-tokens -3", "--max-new-tokens: must be an integer >= 1, got -3"},
           {"bench --model " + path("model") + " --repeats 0", "--repeats: must be an integer >= 1"},
           {"generate --model " + path("model") + " --prompt hi --batch-size 0", "--batch-size"}}) {
    EXPECT_NE(qsweep(args, out), 0) << args;
    expect_contains(out, message);
  }
}

// The BOS switch and the output option are spelled alike in every command (old spellings kept).
TEST_F(CliStoreTest, BosAndOutputFlagsAreSpelledAlikeEverywhere) {
  std::string out;
  const std::string model = " --model " + path("no-model");
  for (const std::string& args :
       {"eval" + model + " --coqa " + write("c.json", "[]") + " --add-bos --out " + path("o"),
        "eval" + model + " --coqa " + path("c.json") + " --no-bos --output_path " + path("o"),
        "generate" + model + " --prompt hi --add-bos", "generate" + model + " --prompt hi --no-bos",
        "generate" + model + " --prompt hi --no-special", "tokenize" + model + " --no-bos",
        "tokenize" + model + " --add-bos", "bench" + model + " --out " + path("b.json")}) {
    EXPECT_EQ(qsweep(args + " < /dev/null", out), 2) << args << "\n" << out;  // no model there
    EXPECT_EQ(out.find("not expected"), std::string::npos) << args << "\n" << out;
    EXPECT_EQ(out.find("INI"), std::string::npos) << args << "\n" << out;
  }
}

// A command line CLI11 refuses exits 2 (docs/reliability.md), not CLI11's own 105-114, with
// the flag named and what to do.
TEST_F(CliStoreTest, UsageErrorsExit2NamingTheFlagAndTheFix) {
  std::string out;
  const std::string eval = "eval --model " + path("model") + " --coqa " + path("coqa.json");
  for (const auto& [args, parts] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {eval + " --limt 3", {"--limt is not an option of eval; did you mean --limit?",
                                 "`qsweep eval --help` lists its options"}},
           {eval + " --limit", {"--limit: 1 required", "`qsweep eval --help`"}},
           {eval + " --mode offcial", {"--mode: offcial not in {lm_eval,official}"}},
           {"show --format xml " + path("s.h5"), {"--format: xml not in", "`qsweep show --help`"}},
           {"generate --model m --prompt hi --logits-out", {"--logits-out: 1 required"}},
           {"evl", {"'evl' is not a command; did you mean 'eval'?", "`qsweep --help`"}},
           {"run", {"job is required", "`qsweep run --help`"}}}) {
    EXPECT_EQ(qsweep(args, out), 2) << args << "\n" << out;
    for (const std::string& part : parts) expect_contains(out, part);
  }
  EXPECT_EQ(qsweep("eval --help", out), 0) << out;
  EXPECT_EQ(qsweep("--version", out), 0) << out;
}

// Old spellings still do what the new ones do, and say which to use.
TEST_F(CliStoreTest, DeprecatedSpellingsStillWorkAndWarn) {
  const std::string tokenize = "tokenize --model " + path("model") + " < " + write("t.txt", "hi");
  std::string now, before;
  ASSERT_EQ(qsweep(tokenize + " --no-bos", now), 0) << now;
  ASSERT_EQ(qsweep(tokenize + " --no-special", before), 0) << before;
  expect_contains(before, "warning: --no-special is deprecated; use --no-bos");
  expect_contains(before, now);  // the same ids
  EXPECT_EQ(now.find("deprecated"), std::string::npos) << now;

  const std::string logits = path("logits.safetensors");
  const std::string generate =
      "generate --model " + path("model") + " --prompt hi --max-new-tokens 1 --logits-out " + logits;
  ASSERT_EQ(qsweep(generate, before), 0) << before;
  expect_contains(before, "--logits-out is deprecated; use --out");
  EXPECT_GT(std::filesystem::file_size(logits), 0u);

  ASSERT_EQ(qsweep("eval --model " + path("model") + " --coqa " + path("coqa.json") +
                       " --limit 1 --max-new-tokens 1 --output-path " + path("lm"), before), 0)
      << before;
  expect_contains(before, "--output-path is deprecated; use --out");
  EXPECT_TRUE(std::filesystem::is_directory(path("lm"))) << before;
}

// --dtype defaults to auto: on the CPU that is float32 whatever the checkpoint holds; an explicit
// dtype, in qsweep's or Hugging Face's spelling, is what runs and what the results record.
TEST_F(CliStoreTest, EvalDtypeDefaultsToAutoAndAcceptsHuggingFaceNames) {
  const std::string eval = "eval --model " + path("model") + " --coqa " + path("coqa.json") +
                           " --limit 1 --max-new-tokens 1 --device cpu";
  std::string out;
  ASSERT_EQ(qsweep(eval, out), 0) << out;
  expect_contains(out, "(fp32)");
  ASSERT_EQ(qsweep(eval + " --dtype bfloat16", out), 0) << out;
  expect_contains(out, "(bf16)");
  EXPECT_EQ(qsweep(eval + " --dtype int4", out), 2) << out;
  expect_contains(out, "--dtype: int4 not in");
}
