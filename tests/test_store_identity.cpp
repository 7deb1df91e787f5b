// What a store's results are tied to: the whole weight files of every model (hashed once, then
// remembered by file identity), one writer however the store is named, and a unit list that
// names each unit once.
#include "qsweep/store/store.h"
#include "sweep/file_hashes.h"
#include "qsweep/util/text.h"
#include "sweep_fixture.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

using namespace qsweep;
using qsweep::testing::with_line;

namespace {

namespace fs = std::filesystem;

class StoreIdentityTest : public qsweep::testing::TempSweep {
 protected:
  // 3 MiB of weights (only hashed, never parsed here).
  void write_weights(const std::string& dir) const {
    std::string bytes(3 << 20, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 2654435761u >> 13);
    write(dir + "/model.safetensors", bytes);
  }
  // Flips one byte at `offset`, keeping the size.
  void flip_byte(const std::string& file, size_t offset) const {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    const char c = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x5a));
  }
  std::string error_opening(const std::string& job, const std::string& store) const {
    try {
      const SweepSpec spec = load(job);
      open_store_for_writing(store, spec, expand_units(spec, 10));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  // A job whose bf16 config has a checkpoint of its own (a copy of the model in other/), and a
  // store of it in which `record` has put that config's first unit.
  std::string job_with_own_model(const std::function<void(Store&)>& record) const {
    fs::copy(path("model"), path("other"));
    write_weights("other");
    const std::string job =
        with_line(valid_job(), 6, "  - {name: bf16, dtype: bf16, model: other}");
    const SweepSpec spec = load(job);
    Store store = open_store_for_writing(path("results.h5"), spec, expand_units(spec, 10));
    record(store);
    save_store(store);
    return job;
  }
};

TEST_F(StoreIdentityTest, ModelChangedOnlyAfterTheFirstMiBIsRefusedOnResume) {
  write_weights("model");
  ASSERT_EQ(error_opening(valid_job(), path("results.h5")), "");
  flip_byte(path("model/model.safetensors"), (2 << 20) + 12345);
  const std::string message = error_opening(valid_job(), path("results.h5"));
  EXPECT_NE(message.find("incompatible sweep (model.weights was model.safetensors:3145728:"),
            std::string::npos)
      << message;
}

TEST_F(StoreIdentityTest, ConfigsOwnModelChangedIsRefusedOnResumeOnceItHasResults) {
  const std::string job = job_with_own_model([](Store& store) {
    add_samples(store, {"bf16/coqa/0000", 0, "here", 1}, {});
  });
  flip_byte(path("other/model.safetensors"), (3 << 20) - 1);
  const std::string message = error_opening(job, path("results.h5"));
  EXPECT_NE(message.find("model[" + path("other") + "].weights was"), std::string::npos) << message;
}

// Nothing to mix: a config whose units all failed (or never ran) gets its checkpoint fixed.
TEST_F(StoreIdentityTest, ConfigsOwnModelWithoutResultsMayBeReplaced) {
  const std::string job = job_with_own_model([](Store& store) {
    add_unit_error(store, {"bf16/coqa/0000", 0, "here", 1}, "truncated");
  });
  flip_byte(path("other/model.safetensors"), 7);
  EXPECT_EQ(error_opening(job, path("results.h5")), "");
}

TEST_F(StoreIdentityTest, WeightHashesAreRememberedByPathSizeMtimeAndInode) {
  write_weights("model");
  const std::string file = path("model/model.safetensors");
  const std::string cache = path("cache/file_hashes.json");
  const std::string real = sha256_file(file);
  EXPECT_EQ(cached_sha256(file, cache), real);
  // The entry is what is returned while the file is unchanged: rewrite it to a marker.
  nlohmann::json entries = nlohmann::json::parse(read_file(cache));
  ASSERT_EQ(entries.size(), 1u);
  const std::string key = entries.begin().key();
  EXPECT_NE(key.find(fs::canonical(file).string() + " size=3145728 mtime_ns="), std::string::npos);
  EXPECT_NE(key.find(" inode="), std::string::npos);
  entries[key] = "remembered";
  write(("cache/file_hashes.json"), entries.dump());
  EXPECT_EQ(cached_sha256(file, cache), "remembered");
  // Rewritten in place (same inode and size, new mtime): hashed again.
  flip_byte(file, 5);
  const fs::file_time_type later = fs::last_write_time(file) + std::chrono::seconds(2);
  fs::last_write_time(file, later);
  EXPECT_EQ(cached_sha256(file, cache), sha256_file(file));
  EXPECT_NE(sha256_file(file), real);
}

TEST_F(StoreIdentityTest, SecondWriterThroughASymlinkIsRefused) {
  const SweepSpec spec = load(valid_job());
  const Store first = open_store_for_writing(path("results.h5"), spec, expand_units(spec, 10));
  fs::create_directories(path("elsewhere"));
  fs::create_symlink(path("results.h5"), path("elsewhere/link.h5"));
  const std::string message = error_opening(valid_job(), path("elsewhere/link.h5"));
  EXPECT_NE(message.find("lock file '" + path("results.h5") + ".lock'"), std::string::npos)
      << message;
  // And through a symlinked directory.
  fs::create_directory_symlink(dir_, path("dirlink"));
  EXPECT_NE(error_opening(valid_job(), path("dirlink/results.h5")).find("is being written by"),
            std::string::npos);
}

TEST_F(StoreIdentityTest, SavingThroughASymlinkWritesTheRealStore) {
  const SweepSpec spec = load(valid_job());
  { const Store s = open_store_for_writing(path("results.h5"), spec, expand_units(spec, 10)); }
  fs::create_symlink(path("results.h5"), path("link.h5"));
  {
    Store s = open_store_for_writing(path("link.h5"), spec, expand_units(spec, 10));
    EXPECT_EQ(s.path, path("results.h5"));
    set_provenance(s, "marker", "through the link");
    save_store(s);
  }
  EXPECT_TRUE(fs::is_symlink(path("link.h5")));
  EXPECT_EQ(read_store(path("results.h5")).provenance.at("marker"), "through the link");
}

TEST_F(StoreIdentityTest, HardLinkedStoreIsRefused) {
  const SweepSpec spec = load(valid_job());
  { const Store s = open_store_for_writing(path("results.h5"), spec, expand_units(spec, 10)); }
  fs::create_hard_link(path("results.h5"), path("second-name.h5"));
  for (const char* name : {"results.h5", "second-name.h5"}) {
    const std::string message = error_opening(valid_job(), path(name));
    EXPECT_NE(message.find("has 2 hard links"), std::string::npos) << message;
  }
}

TEST_F(StoreIdentityTest, StoreNamingAUnitTwiceIsRefusedWithItsName) {
  const SweepSpec spec = load(valid_job());
  { const Store s = open_store_for_writing(path("results.h5"), spec, expand_units(spec, 10)); }
  Results r = read_store(path("results.h5"));
  r.units.push_back(r.units[2]);
  write_store(path("results.h5"), r);
  try {
    read_store(path("results.h5"));
    FAIL() << "a store listing a unit twice was read";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("store '" + path("results.h5") + "': its unit list (/units) names unit '" +
                           r.units[2].key + "' twice, rows 2 and 8"),
              std::string::npos)
        << message;
  }
  EXPECT_NE(error_opening(valid_job(), path("results.h5")).find("twice"), std::string::npos);
}

}  // namespace
