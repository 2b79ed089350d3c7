// BufferedFdSink: access-log lines wait in memory, every other line is
// written at once with what waited before it, and nothing is reordered or
// lost on flush or destruction.
#include "inventory/observability/log_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/logger.h"
#include "spdlog/pattern_formatter.h"

namespace inventory {
namespace {

using ::testing::IsEmpty;

// A pipe whose read end never blocks: what the sink has written so far.
class Pipe {
 public:
  Pipe() {
    EXPECT_EQ(pipe(fds_), 0);
    fcntl(fds_[0], F_SETFL, O_NONBLOCK);
  }
  ~Pipe() {
    close(fds_[0]);
    close(fds_[1]);
  }
  int write_fd() const { return fds_[1]; }
  std::string Drain() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds_[0], buf, sizeof buf)) > 0) out.append(buf, n);
    return out;
  }

 private:
  int fds_[2];
};

struct Loggers {
  Loggers(int fd, size_t max_buffered)
      : sink(std::make_shared<BufferedFdSink>(fd, "rpc", max_buffered)),
        rpc(std::make_shared<spdlog::logger>("rpc", sink)),
        main(std::make_shared<spdlog::logger>("inventoryd", sink)) {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("%v"));
  }
  std::shared_ptr<BufferedFdSink> sink;
  std::shared_ptr<spdlog::logger> rpc;
  std::shared_ptr<spdlog::logger> main;
};

TEST(BufferedFdSinkTest, AccessLinesWaitUntilFlush) {
  Pipe pipe;
  Loggers l(pipe.write_fd(), 1 << 16);
  l.rpc->info("rpc one");
  l.rpc->info("rpc two");
  EXPECT_THAT(pipe.Drain(), IsEmpty());
  l.rpc->flush();
  EXPECT_EQ(pipe.Drain(), "rpc one\nrpc two\n");
}

TEST(BufferedFdSinkTest, OtherLinesAreWrittenAtOnceInOrder) {
  Pipe pipe;
  Loggers l(pipe.write_fd(), 1 << 16);
  l.rpc->info("rpc one");
  l.main->info("serving");
  EXPECT_EQ(pipe.Drain(), "rpc one\nserving\n");
  l.main->warn("shard 1 unreachable");
  EXPECT_EQ(pipe.Drain(), "shard 1 unreachable\n");
}

TEST(BufferedFdSinkTest, FullBufferIsWrittenWithoutAFlush) {
  Pipe pipe;
  Loggers l(pipe.write_fd(), 64);
  std::string expected;
  for (int i = 0; i < 10; ++i) {
    l.rpc->info("rpc line {}", i);
    expected += "rpc line " + std::to_string(i) + "\n";
  }
  // 110 bytes logged against a 64-byte bound: the first lines were written.
  const std::string written = pipe.Drain();
  EXPECT_GE(written.size(), 64u);
  EXPECT_EQ(written, expected.substr(0, written.size()));
  l.rpc->flush();
  EXPECT_EQ(written + pipe.Drain(), expected);
}

TEST(BufferedFdSinkTest, WriteThroughWritesWhatWaitsAndEveryLaterLine) {
  Pipe pipe;
  Loggers l(pipe.write_fd(), 1 << 16);
  l.rpc->info("rpc before exit");
  l.sink->WriteThrough();
  EXPECT_EQ(pipe.Drain(), "rpc before exit\n");
  l.rpc->info("rpc after");
  EXPECT_EQ(pipe.Drain(), "rpc after\n");
}

TEST(BufferedFdSinkTest, FullNonBlockingFdIsWaitedFor) {
  Pipe pipe;
  fcntl(pipe.write_fd(), F_SETFL, O_NONBLOCK);
  // More than the pipe holds (64 KiB by default): the sink must wait for
  // the reader instead of dropping the rest.
  Loggers l(pipe.write_fd(), 1 << 20);
  const std::string line(1000, 'x');
  for (int i = 0; i < 200; ++i) l.rpc->info(line);
  std::string read;
  std::thread reader([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (read.size() < 200 * 1001 && std::chrono::steady_clock::now() < until) {
      read += pipe.Drain();
      usleep(1000);
    }
  });
  l.rpc->flush();
  reader.join();
  EXPECT_EQ(read.size(), 200u * 1001);
}

TEST(BufferedFdSinkTest, DestructionWritesWhatWaits) {
  Pipe pipe;
  {
    Loggers l(pipe.write_fd(), 1 << 16);
    l.rpc->info("rpc last");
  }
  EXPECT_EQ(pipe.Drain(), "rpc last\n");
}

}  // namespace
}  // namespace inventory
