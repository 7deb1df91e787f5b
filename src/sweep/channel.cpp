#include "channel.h"

#include "qsweep/sweep/mpi.h"

namespace qsweep {

std::string exchange_local(Mailbox& box, const std::string& report) {
  std::unique_lock<std::mutex> lock(box.mutex);
  box.report = report;
  box.changed.wait(lock, [&] { return box.reply.has_value(); });
  std::string reply = std::move(*box.reply);
  box.reply.reset();
  return reply;
}

std::string exchange_remote(const std::string& report) {
  send_message(0, MessageTag::report, report);
  return receive_message(0, MessageTag::assignment);
}

std::optional<std::pair<int, std::string>> next_report(Mailbox& local) {
  {
    std::lock_guard<std::mutex> lock(local.mutex);
    if (local.report) {
      std::string r = std::move(*local.report);
      local.report.reset();
      return std::make_pair(0, std::move(r));
    }
  }
  return poll_message(MessageTag::report);
}

void send_reply(int rank, Mailbox& local, const std::string& reply) {
  if (rank != 0) {
    send_message(rank, MessageTag::assignment, reply);
    return;
  }
  std::lock_guard<std::mutex> lock(local.mutex);
  local.reply = reply;
  local.changed.notify_all();
}

}  // namespace qsweep
