#include "qsweep/store/store.h"
#include "store/hdf5_io.h"
#include "record_diff.h"
#include "sweep_fixture.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iterator>
#include <set>

using namespace qsweep;
using qsweep::testing::record_diff;
using qsweep::testing::with_line;

namespace {

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "message: " << text << "\nlacks: " << part;
}

SampleRecord sample(int i) {
  SampleRecord s;
  s.id = "story-" + std::to_string(i);
  s.turn = i + 1;
  s.source = "mctest";
  s.prompt_sha256 = std::string(64, static_cast<char>('a' + i));
  s.prediction = i == 1 ? "caf\xC3\xA9 \xE2\x98\x83" : "white";
  // An empty generation (EOS first) is a value, not an absent one.
  s.generation = i == 2 ? "" : " " + s.prediction + "\n\nQ";
  s.golds = {"white", "a white kitten"};
  s.em = i % 2 == 0 ? 1 : 0;
  s.f1 = s.em ? 1 : 0.4;
  s.prompt_tokens = 300 + i;
  s.generated_tokens = 3;
  s.stop_reason = "stop_string";
  return s;
}

BenchRecord bench() {
  BenchRecord b;
  b.device = "cpu";
  b.device_kind = "cpu";
  b.method = "warmup 1, repeats 3, wall clock";
  b.sync = "steady clock";
  b.warmup = 0;  // a count of 0 is stored, not taken for an absent one
  b.repeats = 3;
  b.throughput_prompt_tokens = 16;
  b.model_bytes = 1 << 20;
  b.peak_memory_bytes = 3 << 20;
  b.decode_bytes_per_step = 1.5e6;
  b.prefill_flops = 2e9;
  b.prefill_ms = {1, 2, 3};
  b.prefill_tflop_s = {2, 1, 0.5};
  b.decode_ms_per_token = {0.5, 0.6};
  b.throughput_tokens_per_s = {{1, {10, 11}}, {4, {100, 110, 120}}};
  b.bandwidth_gb_s = {3, 2.5};
  b.copy_bytes = 64 << 20;
  b.copy_bandwidth_gb_s = {10, 12};
  b.matmul_size = 512;
  b.matmul_tflop_s = {0.1};
  b.decode_fraction_of_copy_bandwidth = 0.25;
  b.prefill_fraction_of_matmul_rate = 10;
  return b;
}

ConfigMetrics metrics(const std::string& config) {
  ConfigMetrics m;
  m.config = config;
  m.em = {4, 0.5, 0.29, {-0.4, 1.4}, {0.0, 1.0}};
  m.f1 = {4, 0.7, 0.17, {0.15, 1.25}, {0.4, 1.0}};
  m.em_vs_baseline = PairedComparison{"fp32", 4, -0.25, {-0.75, 0.0}, 0.31};
  return m;
}

UnitRun run(const std::string& key) { return {key, 2, "node7", 1.5}; }

// The records PandasReadsTheStore (tests/read_store.py) expects.
void fill(Store& store) {
  std::vector<SampleRecord> samples;
  for (int i = 0; i < 4; ++i) samples.push_back(sample(i));
  add_samples(store, run("fp32/coqa/0000"), samples);
  add_bench(store, run("fp32/bench"), bench());
  add_unit_error(store, run("bf16/coqa/0001"), "CUDA out of memory");
  set_metrics(store, metrics("bf16"), "baseline=fp32");
  save_store(store);
}

class StoreTest : public qsweep::testing::TempSweep {
 protected:
  std::string job_with_sanity() const {
    return with_line(valid_job(), 10, "  max_new_tokens: 16\n  sanity_prompts: [\"Hello\"]");
  }
  std::string store_path() const { return path("results.h5"); }
  Store open(const SweepSpec& spec) const {
    return open_store_for_writing(store_path(), spec, expand_units(spec, 10));
  }
};

TEST_F(StoreTest, NewStoreListsEveryPlannedUnitAsTodo) {
  const SweepSpec spec = load(valid_job());
  { const Store store = open(spec); }
  const Results r = read_store(store_path());
  ASSERT_EQ(r.units.size(), 8u);
  EXPECT_EQ(r.units[0].key, "fp32/coqa/0000");
  EXPECT_EQ(r.units[0].status, UnitStatus::todo);
  ASSERT_EQ(r.configs.size(), 2u);
  EXPECT_EQ(r.configs[1].name, "bf16");
  EXPECT_EQ(r.configs[1].fingerprint, "dtype=bf16\n");
  EXPECT_EQ(r.provenance.at("spec_text"), valid_job());
  EXPECT_EQ(r.provenance.at("spec_hash"), spec.spec_hash);
}

TEST_F(StoreTest, RoundTripPreservesEveryRecord) {
  const SweepSpec spec = load(job_with_sanity());
  {
    Store store = open(spec);
    fill(store);
    add_sanity(store, run("bf16/sanity"), {{"Hello", " world"}}, 12.5, 0.25, "fp32");
    save_store(store);
  }
  const Results r = read_store(store_path());
  const ConfigResults& fp32 = *find_config(r, "fp32");
  const std::vector<SampleRecord> samples = all_samples(fp32);
  ASSERT_EQ(samples.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(record_diff(samples[i], sample(i)), "");

  BenchRecord expected_bench = bench();
  expected_bench.config = "fp32";
  EXPECT_EQ(record_diff(fp32.bench, std::optional(expected_bench)), "");

  const ConfigResults& bf16 = *find_config(r, "bf16");
  EXPECT_EQ(record_diff(bf16.metrics, std::optional(metrics("bf16"))), "");
  ASSERT_EQ(bf16.sanity.size(), 1u);
  EXPECT_EQ(bf16.sanity[0].output, " world");
  EXPECT_EQ(bf16.perplexity, 12.5);
  EXPECT_EQ(bf16.kl_vs_baseline, 0.25);
  EXPECT_EQ(bf16.kl_baseline, "fp32");
  EXPECT_EQ(bf16.metrics_from, "baseline=fp32");

  const std::vector<UnitError> errors = {
      {"bf16", "bf16/coqa/0001", 2, "node7", "CUDA out of memory"}};
  EXPECT_EQ(record_diff(r.errors, errors), "");
  for (const UnitRecord& u : r.units) {
    if (u.key != "fp32/bench") continue;
    EXPECT_EQ(u.status, UnitStatus::done);
    EXPECT_EQ(u.rank, 2);
    EXPECT_EQ(u.seconds, 1.5);
    EXPECT_EQ(u.finished_at.size(), 20u);  // 2026-01-01T00:00:00Z
  }
}

TimingSegment timing_segment(int64_t ranks) {
  TimingSegment s;
  s.ended = "finished";
  s.ranks = ranks;
  s.units = 3;
  s.wall_seconds = 10.5;
  s.busy_seconds = 18;
  s.efficiency = 18 / (ranks * 10.5);
  s.store_writes = 4;
  s.store_write_seconds = 0.125;
  s.record_seconds = 0.25;
  for (int rank = 0; rank < ranks; ++rank)
    s.rank_times.push_back({rank, "node7", 1, 0.5, 0, 1, 7, 1, 9, 0.25, 0.75, 1, 0.5, 0});
  s.preparations.push_back({"bf16", 1, 2, 0, 1.5, 0});
  return s;
}

// A resumed sweep reads the earlier runs' segments back and appends its own.
TEST_F(StoreTest, TimingSegmentsRoundTripAndAResumeAppends) {
  const SweepSpec spec = load(valid_job());
  {
    Store store = open(spec);
    add_timing_segment(store, timing_segment(2));
    save_store(store);
  }
  Store resumed = open(spec);
  ASSERT_EQ(resumed.results.timing.size(), 1u);
  add_timing_segment(resumed, timing_segment(3));
  save_store(resumed);
  const Results r = read_store(store_path());
  ASSERT_EQ(r.timing.size(), 2u);
  EXPECT_EQ(record_diff(r.timing, resumed.results.timing), "");
  EXPECT_EQ(r.timing[0].ranks, 2);
  EXPECT_EQ(r.timing[1].rank_times.size(), 3u);
  EXPECT_EQ(r.timing[1].finished_at.size(), 20u);  // stamped when added
}

TEST_F(StoreTest, GenerationsAbsentFromSomeRowsReadBackAbsentThereOnly) {
  std::vector<SampleRecord> samples;
  for (int i = 0; i < 4; ++i) samples.push_back(sample(i));
  samples[1].generation.reset();  // as read from a store written before generations were kept
  {
    Store store = open(load(valid_job()));
    add_samples(store, run("fp32/coqa/0000"), samples);
    save_store(store);
  }
  const std::vector<SampleRecord> got = all_samples(*find_config(read_store(store_path()), "fp32"));
  ASSERT_EQ(got.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(record_diff(got[i], samples[i]), "") << i;
  const H5::H5File file(store_path(), H5F_ACC_RDONLY);
  EXPECT_TRUE(h5::has(file.openGroup("/configs/fp32/samples"), "generation_present"));
}

TEST_F(StoreTest, GenerationsOfEveryRowNeedNoPresenceColumn) {
  {
    Store store = open(load(valid_job()));
    fill(store);
  }
  const H5::H5File file(store_path(), H5F_ACC_RDONLY);
  const H5::Group g = file.openGroup("/configs/fp32/samples");
  EXPECT_TRUE(h5::has(g, "generation"));
  EXPECT_FALSE(h5::has(g, "generation_present"));
}

TEST_F(StoreTest, EveryRewriteLeavesAReadableFileAndNoTemporary) {
  Store store = open(load(valid_job()));
  for (const char* key : {"fp32/coqa/0000", "fp32/coqa/0001", "fp32/coqa/0002"}) {
    add_samples(store, run(key), {sample(0)});
    save_store(store);
    EXPECT_FALSE(std::filesystem::exists(store_path() + ".tmp"));
    EXPECT_EQ(all_samples(*find_config(read_store(store_path()), "fp32")).size(),
              std::string(key).back() - '0' + 1u);
  }
}

// The child rewrites the store as fast as it can and is killed with SIGKILL at arbitrary points:
// whatever moment the kill lands, the store on disk is complete.
TEST_F(StoreTest, KilledWriterLeavesAReadableStore) {
  const SweepSpec spec = load(valid_job());
  for (int attempt = 0; attempt < 5; ++attempt) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    if (child == 0) {
      try {
        Store store = open(spec);
        if (::write(ready[1], "x", 1) != 1) ::_exit(1);
        for (int i = 0;; ++i) {
          set_provenance(store, "counter", std::to_string(i));
          save_store(store);
        }
      } catch (...) {
        ::_exit(1);
      }
    }
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::usleep(2000 + 3000 * attempt);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(ready[0]);
    ::close(ready[1]);
    const Results r = read_store(store_path());
    EXPECT_EQ(r.units.size(), 8u);
  }
}

TEST_F(StoreTest, SecondWriterIsRefusedWithTheLockHolder) {
  const SweepSpec spec = load(valid_job());
  const Store first = open(spec);
  try {
    open(spec);
    FAIL() << "a second writer was allowed";
  } catch (const Error& e) {
    expect_contains(e.what(), store_path() + ".lock");
    expect_contains(e.what(), "PID " + std::to_string(::getpid()));
  }
}

TEST_F(StoreTest, LockIsReleasedWhenTheWriterIsKilled) {
  const SweepSpec spec = load(valid_job());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    try {
      const Store store = open(spec);
      if (::write(ready[1], "x", 1) != 1) ::_exit(1);
      ::pause();
    } catch (...) {
    }
    ::_exit(1);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_THROW(open(spec), Error);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_NO_THROW(open(spec));
}

TEST_F(StoreTest, ResumeSkipsDoneUnitsAndFailedOnesUnlessAskedToRetry) {
  const SweepSpec spec = load(valid_job());
  const std::vector<WorkUnit> planned = expand_units(spec, 10);
  {
    Store store = open(spec);
    fill(store);
  }
  Store store = open(spec);
  EXPECT_EQ(all_samples(*find_config(store.results, "fp32")).size(), 4u);
  auto keys = [&](bool retry_failed) {
    std::vector<std::string> keys;
    for (const WorkUnit& w : pending_units(store, planned, retry_failed)) keys.push_back(w.key);
    return keys;
  };
  const std::vector<std::string> pending = keys(false);
  ASSERT_EQ(pending.size(), 5u);
  EXPECT_EQ(pending[0], "fp32/coqa/0001");
  EXPECT_EQ(std::find(pending.begin(), pending.end(), "bf16/coqa/0001"), pending.end());
  const std::vector<std::string> retried = keys(true);
  EXPECT_EQ(retried.size(), 6u);
  EXPECT_NE(std::find(retried.begin(), retried.end(), "bf16/coqa/0001"), retried.end());

  add_samples(store, run("bf16/coqa/0001"), {sample(0)});
  save_store(store);
  const Results r = read_store(store_path());
  EXPECT_EQ(r.errors.size(), 1u);  // the failure stays on record after the retry succeeded
  EXPECT_EQ(keys(true).size(), 5u);
}

TEST_F(StoreTest, ResumeRefusesASpecThatChangesResults) {
  { const Store store = open(load(valid_job())); }
  try {
    open(load(with_line(valid_job(), 10, "  max_new_tokens: 32")));
    FAIL() << "an incompatible spec resumed the store";
  } catch (const Error& e) {
    expect_contains(e.what(), store_path());
    expect_contains(e.what(), "evaluation.max_new_tokens was 16, now 32");
  }
}

TEST_F(StoreTest, ResumeRefusesAConfigWhosePreparationChanged) {
  { const Store store = open(load(valid_job())); }
  try {
    open(load(with_line(valid_job(), 6, "  - {name: bf16, dtype: fp16}")));
    FAIL() << "a changed config resumed the store";
  } catch (const Error& e) {
    expect_contains(e.what(), "config 'bf16' dtype was bf16, now fp16");
  }
}

TEST_F(StoreTest, ResumeAcceptsNewConfigsAndChangesThatKeepResults) {
  { const Store store = open(load(valid_job())); }
  const SweepSpec grown =
      load(with_line(valid_job(), 6, "  - {name: bf16, dtype: bf16}\n  - {name: fp16, dtype: fp16}") +
           "log_dir: other-logs\ncompare: [[bf16, fp16]]\n");
  const Store store = open(grown);
  EXPECT_EQ(store.results.units.size(), 12u);
  EXPECT_EQ(store.results.configs.back().name, "fp16");
}

TEST_F(StoreTest, DoneUnitCannotBeRecordedTwice) {
  Store store = open(load(valid_job()));
  add_samples(store, run("fp32/coqa/0000"), {sample(0)});
  EXPECT_THROW(add_samples(store, run("fp32/coqa/0000"), {sample(0)}), Error);
  EXPECT_THROW(add_bench(store, run("fp32/coqa/0001"), bench()), Error);  // wrong kind
  EXPECT_THROW(add_samples(store, run("fp32/coqa/0099"), {}), Error);     // not planned
}

TEST_F(StoreTest, FileThatIsNotAStoreIsRejectedByName) {
  write("notes.h5", "not hdf5");
  try {
    read_store(path("notes.h5"));
    FAIL() << "read a text file as a store";
  } catch (const Error& e) {
    expect_contains(e.what(), path("notes.h5"));
    expect_contains(e.what(), "not an HDF5 file");
  }
}

TEST_F(StoreTest, PandasReadsTheStore) {
  if (std::system("/usr/bin/python3 -c 'import h5py, pandas' 2>/dev/null") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with h5py and pandas is not installed";
  {
    Store store = open(load(valid_job()));
    fill(store);
  }
  const std::string command =
      "/usr/bin/python3 " QSWEEP_SOURCE_DIR "/tests/read_store.py " + store_path();
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

// tests/data/store_v0_demo.h5 was written by the qsweep of before the records' field lists
// (tests/data/SOURCES.txt). The layout has not changed since: it reads as it is, and what it
// reads writes back to the same records, the same groups, columns and attributes.
const std::string kV0Store = QSWEEP_SOURCE_DIR "/tests/data/store_v0_demo.h5";

// Every group, column and attribute of a store, by path: "/configs/fp32/samples/f1",
// "/configs/fp32/metrics@em_bca95_lo".
std::set<std::string> layout(const std::string& path) {
  std::set<std::string> names;
  std::function<void(const H5::Group&, const std::string&)> walk = [&](const H5::Group& g,
                                                                       const std::string& at) {
    for (const std::string& attr : h5::attr_names(g)) names.insert(at + "@" + attr);
    for (const std::string& child : h5::children(g)) {
      names.insert(at + "/" + child);
      if (g.childObjType(child) == H5O_TYPE_GROUP) walk(h5::open_group(g, child), at + "/" + child);
    }
  };
  const H5::H5File file(path, H5F_ACC_RDONLY);
  walk(file.openGroup("/"), "");
  return names;
}

TEST(StoreV0, DemoStoreOfTheOldLayoutReads) {
  const Results r = read_store(kV0Store);
  EXPECT_EQ(r.provenance.at("name"), "demo");
  ASSERT_EQ(r.configs.size(), 2u);
  EXPECT_EQ(r.configs[0].name, "fp32");
  EXPECT_EQ(r.configs[1].name, "bf16");
  for (const ConfigResults& c : r.configs) {
    SCOPED_TRACE(c.name);
    const std::vector<SampleRecord> samples = all_samples(c);
    ASSERT_EQ(samples.size(), 10u);  // lm_eval mode: one sample per story
    EXPECT_EQ(c.samples.size(), 5u);  // in five units of two
    for (const SampleRecord& s : samples) {
      EXPECT_EQ(s.prompt_sha256.size(), 64u);
      EXPECT_FALSE(s.golds.empty());
      EXPECT_GT(s.prompt_tokens, 0);
      EXPECT_FALSE(s.generation.has_value());  // written before generations were kept
      EXPECT_TRUE(s.stop_reason == "eos" || s.stop_reason == "stop_string" ||
                  s.stop_reason == "length") << s.stop_reason;
    }
    EXPECT_EQ(samples[0].id, all_samples(r.configs[0])[0].id);
    EXPECT_EQ(samples[0].prompt_sha256, all_samples(r.configs[0])[0].prompt_sha256);
    ASSERT_TRUE(c.metrics.has_value());
    EXPECT_EQ(c.metrics->em.n, 10u);
    ASSERT_TRUE(c.metrics->f1_vs_baseline.has_value());
    EXPECT_EQ(c.metrics->f1_vs_baseline->baseline, "fp32");
    ASSERT_TRUE(c.bench.has_value());
    EXPECT_EQ(c.bench->config, c.name);
    EXPECT_EQ(c.bench->device, "cpu");
    EXPECT_EQ(c.bench->prefill_ms.size(), 3u);  // repeats: 3
    EXPECT_EQ(c.bench->throughput_tokens_per_s.size(), 2u);  // batch_sizes: [1, 2]
    EXPECT_GT(c.bench->model_bytes, 0);
    ASSERT_EQ(c.sanity.size(), 1u);
    EXPECT_EQ(c.sanity[0].prompt, "The capital of France is");
    EXPECT_TRUE(c.perplexity.has_value());
  }
  // A few values as the old qsweep wrote them (h5py on the file).
  const SampleRecord first = all_samples(r.configs[0])[0];
  EXPECT_EQ(first.id, "3dr23u6we5exclen4th8uq9rb42tel");
  EXPECT_EQ(first.turn, 12);
  EXPECT_EQ(first.prompt_sha256,
            "26a5cc599a6e411e4afdc8154523f32282582a052eb64ebdab7559c91c73d53c");
  EXPECT_EQ(first.golds, std::vector<std::string>{"no"});
  EXPECT_EQ(first.prompt_tokens, 530);
  EXPECT_EQ(r.configs[1].bench->model_bytes, 16614016);
  EXPECT_DOUBLE_EQ(*r.configs[0].perplexity, 462861.17776611407);
  EXPECT_DOUBLE_EQ(*r.configs[1].kl_vs_baseline, 0.0007229400704605411);
  EXPECT_EQ(r.units.size(), 14u);
  for (const UnitRecord& u : r.units) EXPECT_EQ(u.status, UnitStatus::done) << u.key;
  EXPECT_TRUE(r.errors.empty());
}

TEST_F(StoreTest, DemoStoreOfTheOldLayoutWritesBackTheSame) {
  const Results old = read_store(kV0Store);
  write_store(store_path(), old);
  EXPECT_EQ(record_diff(read_store(store_path()), old), "");
  const std::set<std::string> now = layout(store_path()), before = layout(kV0Store);
  std::vector<std::string> added, lost;
  std::set_difference(now.begin(), now.end(), before.begin(), before.end(),
                      std::back_inserter(added));
  std::set_difference(before.begin(), before.end(), now.begin(), now.end(),
                      std::back_inserter(lost));
  // The benchmark's sample columns added since are written, empty; its newer attributes stay
  // absent (store_write.cpp).
  std::vector<std::string> new_columns;
  for (const char* config : {"bf16", "fp32"})
    for (const char* column : {"copy_bandwidth_gb_s", "energy_j_per_token", "matmul_tflop_s",
                               "prefill_tflop_s"})
      new_columns.push_back(fmt::format("/configs/{}/bench/{}", config, column));
  EXPECT_EQ(added, new_columns);
  EXPECT_EQ(lost, std::vector<std::string>{});
  EXPECT_GT(now.size(), 100u);
}

// docs/results-schema.md quotes the time this prints: a rewrite after every unit must stay cheap
// next to the unit itself even for a large sweep.
// The study's size: 10 configs x 500 samples survive a rewrite whole. (How long a rewrite takes
// is a benchmark's business, not a test's.)
TEST_F(StoreTest, RewriteOfTenConfigsTimesFiveHundredSamplesReadsBackTheSame) {
  const std::string job = with_line(valid_job(), 9, "  shard_size: 50");
  SweepSpec spec = load(job);
  for (int i = 2; i < 10; ++i) spec.configs.push_back({"c" + std::to_string(i), DType::bf16, ""});
  Store store = open_store_for_writing(store_path(), spec, expand_units(spec, 500));
  for (const WorkUnit& w : expand_units(spec, 500)) {
    if (w.kind == UnitKind::bench) {
      add_bench(store, run(w.key), bench());
      continue;
    }
    std::vector<SampleRecord> samples;
    for (size_t i = w.begin; i < w.end; ++i) {
      SampleRecord s = sample(static_cast<int>(i % 4));
      s.prediction = "a plausible answer of a few words";
      samples.push_back(s);
    }
    add_samples(store, run(w.key), samples);
  }
  save_store(store);
  save_store(store);
  const Results back = read_store(store_path());
  EXPECT_EQ(record_diff(back, store.results), "");
  size_t samples = 0;
  for (const ConfigResults& c : back.configs) samples += all_samples(c).size();
  EXPECT_EQ(samples, 10u * 500u);
}

}  // namespace
