// A store rewrite that the disk refuses: the previous store stays as it was, readable and whole,
// no temporary is left behind, and the error says which mount refused which file.
#include "qsweep/store/store.h"
#include "qsweep/util/durable_file.h"
#include "record_diff.h"
#include "sweep_fixture.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace qsweep;
using qsweep::testing::record_diff;

namespace {

namespace fs = std::filesystem;

SampleRecord long_sample(size_t i) {
  SampleRecord s;
  s.id = "story-" + std::to_string(i);
  s.turn = static_cast<int>(i);
  s.prediction = std::string(200, 'x');
  s.golds = {"a gold answer"};
  return s;
}

class StoreDiskFullTest : public qsweep::testing::TempSweep {
 protected:
  // A store with every unit planned and nothing done, then one with many samples: the second
  // rewrite is far larger than the first.
  Store small_store(const std::string& store_path) const {
    const SweepSpec spec = load(valid_job());
    return open_store_for_writing(store_path, spec, expand_units(spec, 10));
  }
  static void grow(Store& store) {
    std::vector<SampleRecord> samples;
    for (size_t i = 0; i < 3000; ++i) samples.push_back(long_sample(i));
    add_samples(store, {"fp32/coqa/0000", 0, "here", 1}, samples);
  }
  // Saving the grown store fails with a WriteError; returns its message.
  static std::string failed_save(Store& store) {
    try {
      save_store(store);
    } catch (const WriteError& e) {
      return e.what();
    }
    ADD_FAILURE() << "the store was saved although the disk refused it";
    return "";
  }
  static void expect_intact(const std::string& store_path, const Results& before) {
    EXPECT_EQ(record_diff(read_store(store_path), before), "");
    EXPECT_FALSE(fs::exists(store_path + ".tmp")) << "a temporary was left behind";
  }
};

TEST_F(StoreDiskFullTest, FileSizeLimitKeepsThePreviousStore) {
  const std::string store_path = path("results.h5");
  Store store = small_store(store_path);
  const Results before = read_store(store_path);
  grow(store);
  // Without this the kernel's SIGXFSZ would end the test, as qsweep's main() also prevents.
  ::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit limited = old;
  limited.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  const std::string message = failed_save(store);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  EXPECT_NE(message.find("file size limit reached (ulimit -f)"), std::string::npos) << message;
  EXPECT_NE(message.find("writing " + store_path), std::string::npos) << message;
  EXPECT_NE(message.find("durable_file.cpp:"), std::string::npos) << message;
  expect_intact(store_path, before);
  // Space again: the same store is saved, whole.
  save_store(store);
  EXPECT_EQ(all_samples(*find_config(read_store(store_path), "fp32")).size(), 3000u);
}

// A real full file system: a tmpfs of 4 MiB, filled up after the first save.
TEST_F(StoreDiskFullTest, FullFileSystemKeepsThePreviousStoreAndNamesTheMount) {
  const fs::path mount = path("tiny");
  fs::create_directories(mount);
  if (::mount("tmpfs", mount.c_str(), "tmpfs", 0, "size=4m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "; needs root)";
  struct Unmount {
    fs::path dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mount};
  const std::string store_path = (mount / "results.h5").string();
  Store store = small_store(store_path);
  const Results before = read_store(store_path);
  {
    std::ofstream filler(mount / "filler", std::ios::binary);
    const std::string block(4096, '\0');
    while (filler.write(block.data(), block.size())) {
    }
  }
  grow(store);
  const std::string message = failed_save(store);
  EXPECT_NE(message.find("no space left on " + mount.string() + " (tmpfs) writing " + store_path),
            std::string::npos)
      << message;
  expect_intact(store_path, before);
  fs::remove(mount / "filler");
  save_store(store);
  EXPECT_EQ(all_samples(*find_config(read_store(store_path), "fp32")).size(), 3000u);
}

TEST(WriteFailure, NamesTheMountAndTheFileForEachCause) {
  EXPECT_EQ(write_failure(ENOSPC, "/proc/x"), "no space left on /proc (proc) writing /proc/x");
  EXPECT_EQ(write_failure(EDQUOT, "/proc/x"), "disk quota exceeded on /proc (proc) writing /proc/x");
  EXPECT_EQ(write_failure(EIO, "/proc/x"), "cannot write /proc/x on /proc (proc): " +
                                               std::string(std::strerror(EIO)));
}

}  // namespace
