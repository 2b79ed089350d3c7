#include "inventoryd_process.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#ifndef INVENTORYD_PATH
#error "INVENTORYD_PATH must name the inventoryd binary"
#endif

namespace inventory::testing {
namespace {

std::string MakeTempDir() {
  char tmpl[] = "/tmp/inventoryd-test-XXXXXX";
  return mkdtemp(tmpl) != nullptr ? tmpl : "/tmp";
}

// Removes what MakeTempDir made, with the files in it (no subfolders).
void RemoveTempDir(const std::string& dir) {
  if (dir == "/tmp") return;
  for (const char* name : {"/inventoryd.log", "/port"}) {
    unlink((dir + name).c_str());
  }
  rmdir(dir.c_str());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits for `pid`; true if it exited (code in *code).
bool TryReap(pid_t pid, int* code, bool block) {
  int status = 0;
  pid_t r = waitpid(pid, &status, block ? 0 : WNOHANG);
  if (r != pid) return false;
  *code = WIFEXITED(status) ? WEXITSTATUS(status)
                            : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return true;
}

}  // namespace

pid_t InventorydProcess::Spawn(const std::string& shards,
                               const std::vector<std::string>& args,
                               const std::string& log_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Die with the test, even if it crashes before its destructors run.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  // The DSNs travel in the environment, as in production.
  setenv("INVENTORY_SHARDS", shards.c_str(), 1);
  std::vector<char*> argv;
  std::string bin = INVENTORYD_PATH;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(bin.c_str(), argv.data());
  _exit(127);
}

std::unique_ptr<InventorydProcess> InventorydProcess::Start(
    const std::string& shards, const std::vector<std::string>& extra_args,
    std::string* log, absl::Duration timeout) {
  std::unique_ptr<InventorydProcess> p(new InventorydProcess());
  p->dir_ = MakeTempDir();
  p->log_path_ = p->dir_ + "/inventoryd.log";
  const std::string port_file = p->dir_ + "/port";
  std::vector<std::string> args = {"--listen=127.0.0.1:0",
                                   "--port_file=" + port_file};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  p->pid_ = Spawn(shards, args, p->log_path_);
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    int code = 0;
    if (TryReap(p->pid_, &code, false)) {
      p->exited_ = true;
      p->exit_code_ = code;
      if (log != nullptr) *log = p->Log();
      return nullptr;
    }
    std::string text = ReadFile(port_file);
    int port = 0;
    if (!text.empty() &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) &&
        port > 0) {
      p->port_ = port;
      return p;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (log != nullptr) *log = p->Log();
  return nullptr;  // the destructor kills it
}

int InventorydProcess::RunToExit(const std::string& shards,
                                 const std::vector<std::string>& extra_args,
                                 std::string* log, absl::Duration timeout) {
  std::string dir = MakeTempDir();
  std::string log_path = dir + "/inventoryd.log";
  std::vector<std::string> args = {"--listen=127.0.0.1:0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  pid_t pid = Spawn(shards, args, log_path);
  const absl::Time until = absl::Now() + timeout;
  int code = -1;
  while (absl::Now() < until) {
    if (TryReap(pid, &code, false)) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (code == -1) {
    kill(pid, SIGKILL);
    int ignored;
    TryReap(pid, &ignored, true);
  }
  if (log != nullptr) *log = ReadFile(log_path);
  RemoveTempDir(dir);
  return code;
}

InventorydProcess::~InventorydProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    int ignored;
    TryReap(pid_, &ignored, true);
  }
  // A failed test keeps the log for whoever looks into it (a server shared
  // by a suite goes in TearDownTestSuite, after the tests: any failure so
  // far keeps it).
  if (::testing::Test::HasFailure() ||
      ::testing::UnitTest::GetInstance()->Failed()) {
    std::fprintf(stderr, "inventoryd log kept in %s\n", log_path_.c_str());
  } else {
    RemoveTempDir(dir_);
  }
}

std::string InventorydProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void InventorydProcess::Signal(int signal) {
  if (!exited_) kill(pid_, signal);
}

int InventorydProcess::WaitExit(absl::Duration timeout) {
  if (exited_) return exit_code_;
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    if (TryReap(pid_, &exit_code_, false)) {
      exited_ = true;
      return exit_code_;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return -1;
}

std::string InventorydProcess::Log() const { return ReadFile(log_path_); }

}  // namespace inventory::testing
