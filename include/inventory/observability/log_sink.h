// The stderr sink of every log line. Access-log lines (the "rpc" logger) are
// gathered in memory and written in bulk; every other line is written at once,
// together with the access lines before it, so the order on the fd is kept.
#ifndef INVENTORY_OBSERVABILITY_LOG_SINK_H_
#define INVENTORY_OBSERVABILITY_LOG_SINK_H_

#include <cstddef>
#include <mutex>
#include <string>

#include "spdlog/sinks/base_sink.h"

namespace inventory {

// Writes formatted lines to a file descriptor. The one-line-per-RPC access
// log was one write(2) per call on the thread that finished the call; here
// those lines wait until `max_buffered` bytes are pending, another logger
// writes a line, or flush() runs (the logging set-up flushes every second).
// A crash of the process loses at most that much access log (failed calls'
// lines included); the service's own lines, warnings and errors among them,
// are written at once, after the access lines logged before them.
class BufferedFdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Lines of the logger called `buffered_logger` are the ones gathered.
  BufferedFdSink(int fd, std::string buffered_logger, size_t max_buffered);
  ~BufferedFdSink() override;

  // From now on every line is written at once (before the process exits,
  // when no flush may follow).
  void WriteThrough();

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  // Writes everything pending: short writes are continued, a full
  // non-blocking fd is waited for (a second in all); on any other error, or
  // past that second, the lines are dropped.
  void WritePending();

  const int fd_;
  const std::string buffered_logger_;
  size_t max_buffered_;  // guarded by base_sink's mutex
  std::string pending_;  // guarded by base_sink's mutex
};

}  // namespace inventory

#endif  // INVENTORY_OBSERVABILITY_LOG_SINK_H_
