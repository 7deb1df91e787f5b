#pragma once
// Helpers shared by the GoogleTest suites.
//
// A fresh, uniquely named directory for a test's files. mkdtemp rather than
// std::filesystem::remove_all: PyTorch's pip libtorch exports its own std::filesystem symbols,
// and its remove_all crashes when called from code linked against it.
#include "qsweep/util/error.h"

#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>

inline std::string make_temp_dir(const std::string& name) {
  std::string pattern = "/tmp/qsweep-test-" + name + "-XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  return pattern;
}

// The message of the qsweep::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qsweep::Error& e) {
    return e.what();
  }
  return "(no error)";
}
