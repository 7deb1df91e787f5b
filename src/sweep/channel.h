#pragma once
// How workers and rank 0 exchange messages. Remote ranks use MPI; rank 0's own worker runs on a
// thread and uses a mailbox instead, so only the main thread ever calls MPI
// (MPI_THREAD_FUNNELED suffices).
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace qsweep {

struct Mailbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<std::string> report, reply;
};

// Worker side: send a report, wait for the answer.
std::string exchange_local(Mailbox& box, const std::string& report);
std::string exchange_remote(const std::string& report);

// Rank 0 side: the next waiting report (rank 0's own first) and its sender; nothing if none.
std::optional<std::pair<int, std::string>> next_report(Mailbox& local);
void send_reply(int rank, Mailbox& local, const std::string& reply);

}  // namespace qsweep
