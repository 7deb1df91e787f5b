#pragma once
// Names shared by the store's writer and reader (docs/results-schema.md). Private to the store.

namespace qsweep {

// /provenance attributes that identify a qsweep store and its layout version.
inline constexpr const char* kStoreFormat = "qsweep-results";
inline constexpr const char* kStoreFormatVersion = "1";

// A sample's gold answers share one string column, separated by U+001F (ASCII unit separator),
// which never occurs in CoQA text: `golds.split("\x1f")` in Python.
inline constexpr char kGoldSeparator = '\x1f';

// /configs/<name>/bench/throughput_b<N>: tokens/s samples at batch size N.
inline constexpr const char* kThroughputPrefix = "throughput_b";

}  // namespace qsweep
