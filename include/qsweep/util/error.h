#pragma once
// qsweep's exception types and the helpers that throw them. Errors are thrown where they are
// found, with the file, key or tensor that is wrong and what would fix it, and caught once: per
// work unit in the sweep, or in main() for the single-shot commands.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace qsweep {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The accelerator itself failed (a CUDA error leaves its context unusable): the unit is recorded
// as failed like any other, and the rank then leaves the sweep instead of taking more units.
struct DeviceError : Error {
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace qsweep

// For C APIs that return a status: names the call and where it was made.
#define QSWEEP_CHECK(cond, ...)                                                          \
  do {                                                                                   \
    if (!(cond))                                                                         \
      throw ::qsweep::Error(fmt::format("{}:{}: {}", __FILE__, __LINE__,                 \
                                        fmt::format(__VA_ARGS__)));                      \
  } while (0)
