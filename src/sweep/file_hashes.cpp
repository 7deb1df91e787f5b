#include "file_hashes.h"

#include "qsweep/util/durable_file.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/util/text.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace qsweep {
namespace {

std::string identity_of(const std::string& real, const struct stat& st) {
  return fmt::format("{} size={} mtime_ns={} inode={}:{}", real, st.st_size,
                     static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec,
                     st.st_dev, st.st_ino);
}

// Held while the cache is read, the file hashed and the cache rewritten; -1 when no lock could
// be had (the hash is then computed without the cache).
class CacheLock {
 public:
  explicit CacheLock(const std::string& cache_file) {
    std::error_code ec;
    fs::create_directories(fs::path(cache_file).parent_path(), ec);
    fd_ = ::open((cache_file + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0 && ::flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~CacheLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

nlohmann::json read_cache(const std::string& cache_file) {
  if (!fs::exists(cache_file)) return nlohmann::json::object();
  try {
    nlohmann::json cache = nlohmann::json::parse(read_file(cache_file));
    if (cache.is_object()) return cache;
  } catch (const std::exception&) {
    // Rebuilt below: a cache is never a reason to stop.
  }
  log_warning("hash cache '{}' is unreadable; it is rebuilt", cache_file);
  return nlohmann::json::object();
}

}  // namespace

std::string hash_cache_of(const std::string& cache_dir) {
  return (fs::path(cache_dir) / "file_hashes.json").string();
}

std::string cached_sha256(const std::string& file, const std::string& cache_file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) fail("cannot read '{}': {}", file, std::strerror(errno));
  const std::string key = identity_of(fs::canonical(file).string(), st);
  const CacheLock lock(cache_file);
  if (!lock.held()) {
    log_warning("hash cache '{}' cannot be locked; hashing '{}' without it", cache_file, file);
    return sha256_file(file);
  }
  nlohmann::json cache = read_cache(cache_file);
  if (cache.contains(key) && cache[key].is_string()) return cache[key].get<std::string>();
  // Said where it takes long enough to wonder about (about a second per GB).
  const std::string note = fmt::format("hashing every byte of '{}' ({:.1f} MB; remembered in {})",
                                       file, st.st_size / 1e6, cache_file);
  if (st.st_size > (256 << 20)) log_info("{}", note); else log_debug("{}", note);
  const std::string hash = sha256_file(file);
  cache[key] = hash;
  try {
    write_file_atomic(cache_file, cache.dump(1) + "\n");
  } catch (const Error& e) {
    log_warning("hash cache not updated: {}", e.what());
  }
  return hash;
}

}  // namespace qsweep
