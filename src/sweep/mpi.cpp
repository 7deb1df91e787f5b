#include "qsweep/sweep/mpi.h"

#include "qsweep/util/error.h"

#include <mpi.h>

#include <cstdlib>
#include <unistd.h>

namespace qsweep {

void mpi_failed(const char* call, int code, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(fmt::format("{}:{}: {} failed: {}", file, line, call, std::string(text, length)));
}

MpiContext init_mpi(int* argc, char*** argv) {
  int provided = 0;
  QSWEEP_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes, so QSWEEP_MPI_CHECK can say which call failed and where.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MpiContext c;
  QSWEEP_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &c.rank));
  QSWEEP_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &c.size));
  MPI_Comm node;
  QSWEEP_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c.rank,
                                       MPI_INFO_NULL, &node));
  QSWEEP_MPI_CHECK(MPI_Comm_rank(node, &c.local_rank));
  QSWEEP_MPI_CHECK(MPI_Comm_size(node, &c.local_size));
  MPI_Comm_free(&node);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  c.host = host;
  return c;
}

void finalize_mpi() { MPI_Finalize(); }

void abort_mpi(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

void agree_across_ranks(const std::function<void()>& step) {
  std::string error;
  try {
    step();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "unknown error";
  }
  int size = 1, rank = 0;
  QSWEEP_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  QSWEEP_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  int first_failed = error.empty() ? size : rank;
  QSWEEP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &first_failed, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (first_failed == size) return;
  // The failing rank's message travels to every rank, so rank 0 prints it even when its own
  // step went fine (a rank elsewhere without the GPU the job asks for).
  int length = static_cast<int>(error.size());
  QSWEEP_MPI_CHECK(MPI_Bcast(&length, 1, MPI_INT, first_failed, MPI_COMM_WORLD));
  error.resize(static_cast<size_t>(length));
  QSWEEP_MPI_CHECK(MPI_Bcast(error.data(), length, MPI_CHAR, first_failed, MPI_COMM_WORLD));
  throw AgreedError(first_failed == 0 ? error : fmt::format("rank {}: {}", first_failed, error));
}

void send_message(int destination, MessageTag tag, const std::string& payload) {
  QSWEEP_MPI_CHECK(MPI_Send(payload.data(), static_cast<int>(payload.size()), MPI_CHAR,
                            destination, static_cast<int>(tag), MPI_COMM_WORLD));
}

namespace {
std::string receive_probed(const MPI_Status& status) {
  int count = 0;
  QSWEEP_MPI_CHECK(MPI_Get_count(&status, MPI_CHAR, &count));
  std::string payload(static_cast<size_t>(count), '\0');
  QSWEEP_MPI_CHECK(MPI_Recv(payload.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG,
                            MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  return payload;
}
}  // namespace

std::optional<std::pair<int, std::string>> poll_message(MessageTag tag) {
  int waiting = 0;
  MPI_Status status;
  QSWEEP_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, static_cast<int>(tag), MPI_COMM_WORLD, &waiting, &status));
  if (!waiting) return std::nullopt;
  return std::make_pair(status.MPI_SOURCE, receive_probed(status));
}

std::string broadcast_from_root(const std::string& value, const MpiContext& mpi) {
  if (mpi.size == 1) return value;
  int length = static_cast<int>(value.size());
  QSWEEP_MPI_CHECK(MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD));
  std::string received = mpi.rank == 0 ? value : std::string(static_cast<size_t>(length), '\0');
  QSWEEP_MPI_CHECK(MPI_Bcast(received.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD));
  return received;
}

}  // namespace qsweep
