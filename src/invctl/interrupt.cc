#include "invctl/interrupt.h"

#include <cerrno>
#include <unistd.h>

namespace invctl {
namespace {

// The write end of the live CancelOnInterrupt's pipe (-1 if none). A signal
// handler may only do async-signal-safe things: it writes one byte.
std::atomic<int> g_signal_fd{-1};

constexpr char kSignalled = 's';
constexpr char kStop = 'q';

void OnSignal(int) {
  const int saved = errno;
  const int fd = g_signal_fd.load();
  if (fd >= 0) {
    const char b = kSignalled;
    [[maybe_unused]] ssize_t n = write(fd, &b, 1);
  }
  errno = saved;
}

}  // namespace

CancelOnInterrupt::CancelOnInterrupt(grpc::ClientContext* context)
    : context_(context) {
  if (pipe(pipe_) != 0) return;  // No pipe: Ctrl-C kills, as by default.
  g_signal_fd.store(pipe_[1]);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
  waiter_ = std::thread([this] {
    char b = 0;
    while (true) {
      const ssize_t n = read(pipe_[0], &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n != 1 || b == kStop) return;
      interrupted_.store(true);
      context_->TryCancel();
      return;
    }
  });
}

CancelOnInterrupt::~CancelOnInterrupt() {
  if (pipe_[0] < 0) return;
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  g_signal_fd.store(-1);
  const char b = kStop;
  [[maybe_unused]] ssize_t n = write(pipe_[1], &b, 1);
  waiter_.join();
  close(pipe_[0]);
  close(pipe_[1]);
}

}  // namespace invctl
