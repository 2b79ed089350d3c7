#include "inventory/observability/log_sink.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
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
  const bool held = msg.logger_name.size() == buffered_logger_.size() &&
                    std::equal(buffered_logger_.begin(), buffered_logger_.end(),
                               msg.logger_name.begin());
  if (!held || pending_.size() >= max_buffered_) WritePending();
}

void BufferedFdSink::flush_() { WritePending(); }

void BufferedFdSink::WriteThrough() {
  std::lock_guard<std::mutex> lock(mutex_);
  max_buffered_ = 0;
  WritePending();
}

void BufferedFdSink::WritePending() {
  size_t done = 0;
  // A full non-blocking fd is waited for, a second in all.
  int wait_left_ms = 1000;
  while (done < pending_.size()) {
    const ssize_t n =
        ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
               wait_left_ms > 0) {
      // stderr set non-blocking by whoever shares it: wait for room.
      pollfd p{fd_, POLLOUT, 0};
      const auto start = std::chrono::steady_clock::now();
      ::poll(&p, 1, wait_left_ms);
      wait_left_ms -= static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - start)
              .count()) +
          1;
    } else {
      break;  // nowhere to write: the lines are dropped
    }
  }
  pending_.clear();
}

}  // namespace inventory
