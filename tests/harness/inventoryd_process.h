// Test harness: inventoryd as a real child process on a free port (--listen
// 127.0.0.1:0, the port read back from --port_file), its log kept in a file
// in a temporary folder, removed with the process unless the test failed.
#ifndef INVENTORY_TESTS_HARNESS_INVENTORYD_PROCESS_H_
#define INVENTORY_TESTS_HARNESS_INVENTORYD_PROCESS_H_

#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "absl/time/time.h"

namespace inventory::testing {

// One inventoryd child process.
class InventorydProcess {
 public:
  // Starts inventoryd with --shards=`shards` and `extra_args`, and waits until
  // it serves (port file written). Returns nullptr (and, in *log, what it
  // printed) if it exits or does not serve within `timeout`.
  static std::unique_ptr<InventorydProcess> Start(
      const std::string& shards, const std::vector<std::string>& extra_args = {},
      std::string* log = nullptr, absl::Duration timeout = absl::Seconds(30));

  // Runs inventoryd to completion (for start-up refusals); returns the exit
  // code (-1 on timeout, when it is killed) and what it printed.
  static int RunToExit(const std::string& shards,
                       const std::vector<std::string>& extra_args,
                       std::string* log,
                       absl::Duration timeout = absl::Seconds(30));

  ~InventorydProcess();

  int port() const { return port_; }
  std::string address() const;
  pid_t pid() const { return pid_; }

  // Sends `signal`.
  void Signal(int signal);
  // Waits for exit; returns the exit code, 128+signal if killed by one, or
  // -1 if still running after `timeout`.
  int WaitExit(absl::Duration timeout);
  // What it has printed so far.
  std::string Log() const;

 private:
  InventorydProcess() = default;
  static pid_t Spawn(const std::string& shards,
                     const std::vector<std::string>& args,
                     const std::string& log_path);

  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int exit_code_ = 0;
  std::string dir_;
  std::string log_path_;
};

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_INVENTORYD_PROCESS_H_
