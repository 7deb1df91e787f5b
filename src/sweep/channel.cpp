#include "channel.h"

#include "qsweep/sweep/stop_signal.h"
#include "qsweep/sweep/mpi.h"
#include "qsweep/sweep/protocol.h"

#include <chrono>
#include <thread>

namespace qsweep {
namespace {

using Clock = std::chrono::steady_clock;

bool stop_requested() {
  return stop_signal() != 0 || poll_message(MessageTag::stop).has_value();
}

// Rank 0's answer to the report just sent; none if the sweep is stopped meanwhile.
std::optional<std::string> wait_for_assignment() {
  for (;;) {
    if (auto m = poll_message(MessageTag::assignment)) return std::move(m->second);
    if (stop_requested()) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

std::string exchange_local(Mailbox& box, const std::string& report) {
  std::unique_lock<std::mutex> lock(box.mutex);
  box.report = report;
  box.changed.notify_all();
  box.changed.wait(lock, [&] { return box.reply.has_value(); });
  std::string reply = std::move(*box.reply);
  box.reply.reset();
  return reply;
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

std::vector<int> heartbeats() {
  std::vector<int> ranks;
  while (auto m = poll_message(MessageTag::heartbeat)) ranks.push_back(m->first);
  return ranks;
}

void send_stop(int rank) { send_message(rank, MessageTag::stop, ""); }

MessengerEnd relay_to_rank0(Mailbox& box, double heartbeat_seconds) {
  const auto beat_every = std::chrono::duration<double>(heartbeat_seconds);
  auto last_beat = Clock::now();
  for (;;) {
    if (stop_requested()) return MessengerEnd::stopped;
    std::optional<std::string> report;
    {
      std::unique_lock<std::mutex> lock(box.mutex);
      box.changed.wait_for(lock, std::chrono::milliseconds(20), [&] { return box.report.has_value(); });
      report.swap(box.report);
    }
    if (!report) {
      if (Clock::now() - last_beat >= beat_every) {
        send_message(0, MessageTag::heartbeat, "");
        last_beat = Clock::now();
      }
      continue;
    }
    send_message(0, MessageTag::report, *report);
    std::optional<std::string> reply = wait_for_assignment();
    if (!reply) return MessengerEnd::stopped;
    const bool last = !decode_assignment(*reply).unit;
    {
      std::lock_guard<std::mutex> lock(box.mutex);
      box.reply = std::move(reply);
      box.changed.notify_all();
    }
    if (last) return MessengerEnd::finished;
    last_beat = Clock::now();
  }
}

}  // namespace qsweep
