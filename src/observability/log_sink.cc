#include "inventory/observability/log_sink.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <utility>

namespace inventory {

BufferedFdSink::BufferedFdSink(int fd, std::string buffered_logger,
                               size_t max_buffered)
    : fd_(fd),
      buffered_logger_(std::move(buffered_logger)),
      max_buffered_(max_buffered) {
  pending_.reserve(max_buffered_ + 1024);
}

BufferedFdSink::~BufferedFdSink() {
  std::lock_guard<std::mutex> lock(mutex_);
  WritePending();
}

void BufferedFdSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t line;
  formatter_->format(msg, line);
  pending_.append(line.data(), line.size());
  const bool held =
      msg.logger_name == spdlog::string_view_t(buffered_logger_);
  if (!held || pending_.size() >= max_buffered_) WritePending();
}

void BufferedFdSink::flush_() { WritePending(); }

void BufferedFdSink::WriteThrough() {
  std::lock_guard<std::mutex> lock(mutex_);
  max_buffered_ = 0;
  WritePending();
}

void BufferedFdSink::WritePending() {
  // A full non-blocking fd is waited for, a second in all.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  size_t done = 0;
  while (done < pending_.size()) {
    const ssize_t n =
        ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
        left.count() > 0) {
      // stderr set non-blocking by whoever shares it: wait for room.
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
      continue;
    }
    break;  // nowhere to write: the lines are dropped
  }
  pending_.clear();
}

}  // namespace inventory
