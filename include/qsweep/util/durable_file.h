#pragma once
// Files that must never be left half-written: the results store, lm-eval JSON, the hash cache.
// Bytes go to FILE.tmp beside FILE through write(2), every call checked (a full disk shows up at
// write, fsync or close, depending on the file system), and only a complete, synced and closed
// temporary is renamed over FILE. A failure removes the temporary and throws WriteError; FILE
// keeps what it held before.
#include "qsweep/util/error.h"

#include <string>
#include <string_view>

namespace qsweep {

// The disk (or quota, or ulimit) refused the bytes: what is already on disk is intact, but
// nothing more can be saved there. Rank 0 stops the sweep on it (docs/reliability.md).
struct WriteError : Error {
  using Error::Error;
};

// Writes via FILE.tmp, fsync and rename (the directory synced too). Also declared in text.h,
// where its callers have always found it.
void write_file_atomic(const std::string& path, std::string_view bytes);

// "no space left on /scratch (/dev/sdb1) writing FILE" for ENOSPC, and likewise for a quota, a
// file-size limit or another errno, naming the mount that holds `path`.
std::string write_failure(int err, const std::string& path);

// The mount point holding `path` (an existing file or directory) and its device, e.g.
// "/scratch (/dev/sdb1)".
std::string mount_of(const std::string& path);

}  // namespace qsweep
