#include "quant_cache.h"

#include "file_hashes.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/util/text.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace qsweep {
namespace {

constexpr const char* kKeyFile = "qsweep_cache_key.txt";

// What both kinds of entry depend on: the model's identity, the tokenizer, the config.
std::string model_key(const SweepSpec& spec, const PrepConfig& c) {
  const std::string model = model_dir_of(spec, c);
  return fmt::format(
      "qsweep_cache_format=2\nmodel.config_sha256={}\nmodel.weights={}\ntokenizer.sha256={}\n{}",
      sha256_file((fs::path(model) / "config.json").string()), weights_fingerprint(model, hash_cache_of(cache_dir_of(spec, ""))),
      sha256_file((fs::path(spec.tokenizer) / "tokenizer.json").string()), config_fingerprint(c));
}

CacheEntry named_entry(const SweepSpec& spec, const std::string& kind, const std::string& key) {
  const std::string name = fmt::format("{}-{}", kind, sha256_hex(key).substr(0, 16));
  return {(fs::path(cache_dir_of(spec, "")) / name).string(), key};
}

}  // namespace

CacheEntry cache_entry(const SweepSpec& spec, const PrepConfig& c, int seq_len) {
  return named_entry(spec, quant_method_name(c.quant.method),
                     model_key(spec, c) + fmt::format("calibration.seq_len_used={}\n", seq_len));
}

CacheEntry baseline_logits_entry(const SweepSpec& spec, const PrepConfig& baseline,
                                 const std::vector<std::vector<int32_t>>& windows) {
  std::string tokens;
  for (const auto& w : windows) {
    tokens += fmt::format("{}\n", w.size());
    tokens.append(reinterpret_cast<const char*>(w.data()), w.size() * sizeof(int32_t));
  }
  return named_entry(spec, "kl-baseline",
                     model_key(spec, baseline) +
                         fmt::format("windows={}\nwindows.sha256={}\n", windows.size(),
                                     sha256_hex(tokens)));
}

bool cache_entry_complete(const CacheEntry& entry) {
  const fs::path key_file = fs::path(entry.dir) / kKeyFile;
  return fs::is_regular_file(key_file) && read_file(key_file.string()) == entry.key;
}

std::string cache_entry_staging(const CacheEntry& entry) {
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string staging = fmt::format("{}.tmp-{}-{}", entry.dir, host, ::getpid());
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) fail("cannot create the cache directory '{}': {}", staging, ec.message());
  return staging;
}

void publish_cache_entry(const CacheEntry& entry, const std::string& staging) {
  // The key file marks the entry complete: written only after the checkpoint, and checked.
  write_file_atomic((fs::path(staging) / kKeyFile).string(), entry.key);
  std::error_code ec;
  fs::remove_all(entry.dir, ec);  // an entry of another key under the same name (a collision)
  fs::rename(staging, entry.dir, ec);
  if (ec) fail("cannot move the cached checkpoint '{}' to '{}': {}", staging, entry.dir, ec.message());
}

CacheLock::CacheLock(const CacheEntry& entry) {
  const std::string path = entry.dir + ".lock";
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create the cache lock '{}': {}", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  log_info("waiting for another rank to finish {} (lock {})", entry.dir, path);
  if (::flock(fd_, LOCK_EX) != 0)
    fail("cannot lock '{}': {} (the cache needs a file system with flock support; set cache_dir "
         "to one)", path, std::strerror(errno));
}

CacheLock::~CacheLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace qsweep
