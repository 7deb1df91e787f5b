#pragma once
// SHA-256 of whole weight files, remembered so that a 16 GB checkpoint is hashed once rather than
// on every run. Entries are keyed by the file's identity as the kernel sees it: its real path,
// size, modification time (ns) and inode; a rewritten, replaced or touched file misses and is
// hashed again. The cache is one JSON file, read and rewritten under an flock so ranks hashing
// at once wait for each other instead of hashing twice.
#include <string>

namespace qsweep {

// The whole file's SHA-256, from `cache_file` when it has an entry for the file as it is now,
// else computed and added. A cache that cannot be read or written is only a warning.
std::string cached_sha256(const std::string& file, const std::string& cache_file);

// The hash cache a sweep uses: file_hashes.json in its cache directory (cache_dir_of).
std::string hash_cache_of(const std::string& cache_dir);

}  // namespace qsweep
