#pragma once
// Rank-aware logging. Every rank writes its own file (logs/qsweep-<rank>.log by default) with
// rank and host on each line; rank 0 also prints to the console, where progress is watched.
// Boost.Log stays inside log.cpp so this header is cheap to include.
#include <fmt/format.h>

#include <string>
#include <string_view>

namespace qsweep {

enum class LogLevel { debug, info, warning, error };

struct LogOptions {
  int rank = 0;
  std::string host;
  std::string dir;             // empty: no log file
  std::string file_stem = "qsweep";  // the file is DIR/<file_stem>-rank<N>.log
  bool console = true;         // usually rank 0 only
  LogLevel level = LogLevel::info;
};

void init_logging(const LogOptions& options);
void write_log(LogLevel level, std::string_view message);

template <typename... A>
void log_debug(fmt::format_string<A...> f, A&&... a) {
  write_log(LogLevel::debug, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void log_info(fmt::format_string<A...> f, A&&... a) {
  write_log(LogLevel::info, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void log_warning(fmt::format_string<A...> f, A&&... a) {
  write_log(LogLevel::warning, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A>
void log_error(fmt::format_string<A...> f, A&&... a) {
  write_log(LogLevel::error, fmt::format(f, std::forward<A>(a)...));
}

}  // namespace qsweep
