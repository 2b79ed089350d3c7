// Ctrl-C for long-running calls (`events watch`): while a CancelOnInterrupt
// lives, SIGINT and SIGTERM cancel its call instead of killing the process,
// so the stream ends cleanly and invctl exits 0.
#ifndef INVENTORY_SRC_INVCTL_INTERRUPT_H_
#define INVENTORY_SRC_INVCTL_INTERRUPT_H_

#include <atomic>
#include <csignal>
#include <thread>

#include "grpcpp/client_context.h"

namespace invctl {

// Cancels `context` on SIGINT / SIGTERM. One at a time per process.
class CancelOnInterrupt {
 public:
  explicit CancelOnInterrupt(grpc::ClientContext* context);
  ~CancelOnInterrupt();
  CancelOnInterrupt(const CancelOnInterrupt&) = delete;
  CancelOnInterrupt& operator=(const CancelOnInterrupt&) = delete;

  // True once a signal has cancelled the call.
  bool interrupted() const { return interrupted_.load(); }

 private:
  grpc::ClientContext* context_;
  std::atomic<bool> interrupted_{false};
  int pipe_[2] = {-1, -1};
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  std::thread waiter_;
};

}  // namespace invctl

#endif  // INVENTORY_SRC_INVCTL_INTERRUPT_H_
