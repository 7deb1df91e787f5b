// One writer per store: an flock() on FILE.lock, held while the writer lives. The kernel drops it
// when the process exits or is killed, so a crashed sweep never leaves a stale lock; the file
// itself stays (removing it would let a waiting writer lock a different inode than a new one).
#include "qsweep/util/error.h"
#include "qsweep/store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

namespace qsweep {
namespace {

std::string read_holder(int fd) {
  char buffer[256] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string holder = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return holder.empty() ? "an unknown process" : holder;
}

void write_holder(int fd) {
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string holder = fmt::format("PID {} on host {}\n", ::getpid(), host);
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, holder.data(), holder.size(), 0) < 0) {
    // The lock is held; only the courtesy note for a refused writer is missing.
  }
}

}  // namespace

StoreLock::StoreLock(const std::string& store_path) {
  const std::string path = store_path + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create the store lock '{}': {}", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    write_holder(fd_);
    return;
  }
  const int err = errno;
  const std::string holder = err == EWOULDBLOCK ? read_holder(fd_) : "";
  ::close(fd_);
  if (err == EWOULDBLOCK)
    fail("store '{}' is being written by {} (lock file '{}'); wait for that sweep to end, or "
         "give this one another store",
         store_path, holder, path);
  fail("cannot lock '{}': {} (file systems mounted without flock support, e.g. Lustre without "
       "-o flock, cannot hold a store)",
       path, std::strerror(err));
}

StoreLock::StoreLock(StoreLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

StoreLock& StoreLock::operator=(StoreLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace qsweep
