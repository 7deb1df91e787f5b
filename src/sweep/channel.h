#pragma once
// How workers and rank 0 exchange messages. A worker's units run on a compute thread, which
// talks through a mailbox to its rank's main thread; only main threads call MPI
// (MPI_THREAD_FUNNELED suffices). On rank 0 the main thread is the coordinator itself; on the
// other ranks it is a messenger that relays reports and assignments over MPI, sends heartbeats
// while a unit runs, and watches for a stop (a signal, or rank 0's stop message).
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qsweep {

struct Mailbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<std::string> report, reply;
};

// Compute thread side: send a report, wait for the answer.
std::string exchange_local(Mailbox& box, const std::string& report);

// Rank 0 side: the next waiting report (rank 0's own first) and its sender; nothing if none.
std::optional<std::pair<int, std::string>> next_report(Mailbox& local);
void send_reply(int rank, Mailbox& local, const std::string& reply);
// The ranks that sent a heartbeat since the last call.
std::vector<int> heartbeats();
// Tells a remote rank to stop at once, abandoning its unit.
void send_stop(int rank);

// How a remote rank's messenger ended.
enum class MessengerEnd {
  finished,   // rank 0 had no more units; the compute thread has ended
  stopped,    // a stop signal or rank 0's stop message: the compute thread may still be running
};

// A remote rank's main thread while its compute thread works through `box`: relays reports and
// assignments, and sends rank 0 a heartbeat every `heartbeat_seconds` while a unit runs.
MessengerEnd relay_to_rank0(Mailbox& box, double heartbeat_seconds);

}  // namespace qsweep
