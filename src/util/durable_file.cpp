#include "qsweep/util/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

// Every system call of a durable write: on failure, the message for its errno, with where the
// check is (file:line), the temporary removed first.
#define QSWEEP_WRITE_CHECK(ok, tmp, target)                                                     \
  do {                                                                                          \
    if (!(ok)) {                                                                                \
      const int err_ = errno;                                                                   \
      ::unlink((tmp).c_str());                                                                  \
      throw ::qsweep::WriteError(                                                               \
          fmt::format("{}:{}: {}", __FILE__, __LINE__, ::qsweep::write_failure(err_, target))); \
    }                                                                                           \
  } while (0)

namespace qsweep {
namespace {

// /proc/self/mounts escapes blanks in paths as octal (\040).
std::string unescape_mount_field(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string device_of_mount(const std::string& mount_point) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line, device;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string dev, dir;
    fields >> dev >> dir;
    // The last entry for a mount point is the one on top.
    if (unescape_mount_field(dir) == mount_point) device = unescape_mount_field(dev);
  }
  return device;
}

void sync_directory(const std::string& dir, const std::string& target) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw WriteError(fmt::format("{}:{}: {} (syncing its directory)", __FILE__, __LINE__,
                                 write_failure(err, target)));
  }
  ::close(fd);
}

}  // namespace

std::string mount_of(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  while (!p.empty() && !fs::exists(p, ec)) p = p.parent_path();
  struct stat st {};
  if (p.empty() || ::stat(p.c_str(), &st) != 0) return "?";
  // Up the tree until the device changes: the last directory on this device is the mount point.
  while (p.has_parent_path() && p != p.root_path()) {
    struct stat up {};
    if (::stat(p.parent_path().c_str(), &up) != 0 || up.st_dev != st.st_dev) break;
    p = p.parent_path();
  }
  const std::string device = device_of_mount(p.string());
  return device.empty() ? p.string() : fmt::format("{} ({})", p.string(), device);
}

std::string write_failure(int err, const std::string& path) {
  switch (err) {
    case ENOSPC: return fmt::format("no space left on {} writing {}", mount_of(path), path);
    case EDQUOT: return fmt::format("disk quota exceeded on {} writing {}", mount_of(path), path);
    case EFBIG:
      return fmt::format("file size limit reached (ulimit -f) on {} writing {}", mount_of(path),
                         path);
    default:
      return fmt::format("cannot write {} on {}: {}", path, mount_of(path), std::strerror(err));
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  QSWEEP_WRITE_CHECK(fd >= 0, tmp, path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ::close(fd);
    QSWEEP_WRITE_CHECK(n >= 0, tmp, path);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    QSWEEP_WRITE_CHECK(false, tmp, path);
  }
  QSWEEP_WRITE_CHECK(::close(fd) == 0, tmp, path);
  QSWEEP_WRITE_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, tmp, path);
  sync_directory(fs::absolute(path).parent_path().string(), path);
}

}  // namespace qsweep
