#pragma once
// Small text and file helpers shared across concerns.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qsweep {

// Whole file as bytes; throws Error naming the path when it cannot be read.
std::string read_file(const std::string& path);
// Writes via a temporary file and rename, so readers never see a half-written file.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Lower-case hex SHA-256 of bytes / of a file's contents.
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::string& path);

// UTF-8 <-> code points. Each maximal invalid subsequence decodes to one U+FFFD, as Python's
// errors="replace" and Rust's from_utf8_lossy do.
std::u32string utf8_to_u32(std::string_view s);
bool is_valid_utf8(std::string_view s);
// Decodes the character at s[i] into `cp`: returns its length and sets `valid`. An invalid
// sequence reports the length of its maximal valid prefix (at least 1), the unit U+FFFD
// replaces. qsweep's one UTF-8 decoder.
size_t decode_utf8(std::string_view s, size_t i, char32_t& cp, bool& valid);
// s with every invalid subsequence replaced by U+FFFD.
std::string utf8_lossy(std::string_view s);
std::string u32_to_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t cp);

// Replaces every occurrence of `from` (non-empty) in s, left to right.
void replace_all(std::string& s, std::string_view from, std::string_view to);

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b);
// The closest candidate within a small distance, or "" when none is close.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace qsweep
