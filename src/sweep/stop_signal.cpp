#include "qsweep/sweep/stop_signal.h"

#include <atomic>
#include <csignal>

namespace qsweep {
namespace {

std::atomic<int> received{0};

extern "C" void note_signal(int signal) { received.store(signal); }

}  // namespace

void install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = note_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a read or write in flight (a checkpoint being loaded) carries on; the sweep
  // stops at its next look at the flag, never half-way through a system call.
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int stop_signal() { return received.load(); }

const char* stop_signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace qsweep
