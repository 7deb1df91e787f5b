#pragma once
// The little MPI qsweep needs: start-up with the node-local rank (one GPU per rank, as
// nccl-tests chooses it) and string messages between a worker and rank 0.
#include "qsweep/util/error.h"

#include <functional>
#include <optional>
#include <string>

namespace qsweep {

struct MpiContext {
  int rank = 0;
  int size = 1;
  int local_rank = 0;   // rank among the processes of this node: picks the GPU
  int local_size = 1;
  std::string host;
};

// MPI_Init_thread with MPI_THREAD_FUNNELED (only the main thread of a rank calls MPI).
MpiContext init_mpi(int* argc, char*** argv);
void finalize_mpi();
// Ends every rank of the job: for failures after the sweep started, where waiting ranks would
// hang. Bad inputs never get here (agree_across_ranks).
[[noreturn]] void abort_mpi(int exit_code);

// An error every rank of the job knows of: each can finalize MPI and exit with the same code.
struct AgreedError : Error {
  using Error::Error;
};

// Runs `step` on every rank (a collective call) and agrees on how it went: when it threw on any
// rank, every rank throws AgreedError carrying the message of the lowest rank that failed, so
// rank 0 can print that one message and every rank exit alike, without MPI_Abort.
void agree_across_ranks(const std::function<void()>& step);

// Rank 0's value on every rank (a collective: every rank calls it).
std::string broadcast_from_root(const std::string& value, const MpiContext& mpi);

// report: worker -> rank 0, a unit's result and a request for the next; assignment: the answer;
// heartbeat: worker -> rank 0 while a unit runs; stop: rank 0 -> worker, abandon the unit.
enum class MessageTag : int { report = 1, assignment = 2, heartbeat = 3, stop = 4 };

void send_message(int destination, MessageTag tag, const std::string& payload);
// A message with this tag waiting from any rank: its payload and sender; nothing if none.
std::optional<std::pair<int, std::string>> poll_message(MessageTag tag);

}  // namespace qsweep

// MPI calls return an error code; this turns one into an Error naming the call and file:line.
#define QSWEEP_MPI_CHECK(call)                                                              \
  do {                                                                                      \
    const int qsweep_mpi_rc = (call);                                                       \
    if (qsweep_mpi_rc != MPI_SUCCESS) ::qsweep::mpi_failed(#call, qsweep_mpi_rc, __FILE__, __LINE__); \
  } while (0)

namespace qsweep {
[[noreturn]] void mpi_failed(const char* call, int code, const char* file, int line);
}
