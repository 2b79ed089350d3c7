// End to end: the invctl binary, run as a subprocess against a real
// inventoryd on 3 real shards — every subcommand in json and table output,
// data on stdout and errors on stderr, and the exit codes: 0 success, 1 a
// failed check (verify drift), 2 usage errors, 64 + gRPC code for failed
// calls (69 NOT_FOUND, 73 FAILED_PRECONDITION, 78 UNAVAILABLE, ...).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc_client.h"
#include "gtest/gtest.h"
#include "inventoryd_process.h"
#include "shard_cluster.h"
#include "sql.h"

#ifndef INVCTL_PATH
#error "INVCTL_PATH must name the invctl binary"
#endif

extern char** environ;

namespace inventory::testing {
namespace {

namespace v1 = ::inventory::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kShards = 3;
constexpr int kUsage = 2;
constexpr int kRpcBase = 64;

// What one run of invctl did.
struct Result {
  int exit_code = -1;  // 128 + signal if killed; -1 if it had to be killed.
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.exit_code << "\n--- stdout:\n"
            << r.out << "--- stderr:\n"
            << r.err;
}

// invctl as a child process, stdout and stderr captured apart.
class Invctl {
 public:
  // Starts invctl with `args`; `env` entries override the environment.
  Invctl(const std::vector<std::string>& args,
         const std::map<std::string, std::string>& env) {
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      if (env.count(key) == 0 && key != "INVCTL_ADDR") envs.push_back(kv);
    }
    for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<std::string> argv_s = {INVCTL_PATH};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);

    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe: " << strerror(errno);
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out_pipe[1], 1);
      dup2(err_pipe[1], 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
  }

  ~Invctl() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  // Reads output until `done(stdout so far)` holds, both pipes close, or
  // `timeout` passes; returns whether `done` held.
  bool ReadUntil(const std::function<bool(const std::string&)>& done,
                 absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!done(result_.out)) {
      if (out_fd_ < 0 && err_fd_ < 0) return false;
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
      const int n = poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) continue;
      Drain(fds[0], &out_fd_, &result_.out);
      Drain(fds[1], &err_fd_, &result_.err);
    }
    return true;
  }

  void Signal(int sig) { kill(pid_, sig); }

  // Reads everything and waits for the exit; kills the child after `timeout`.
  Result Wait(absl::Duration timeout = absl::Seconds(60)) {
    ReadUntil([](const std::string&) { return false; }, timeout);
    int status = 0;
    if (out_fd_ >= 0 || err_fd_ >= 0) {
      ADD_FAILURE() << "invctl did not finish within " << timeout;
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      reaped_ = true;
      result_.exit_code = -1;
      return result_;
    }
    waitpid(pid_, &status, 0);
    reaped_ = true;
    result_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status)
                                          : 128 + WTERMSIG(status);
    return result_;
  }

  const std::string& out() const { return result_.out; }

 private:
  static void Drain(const pollfd& p, int* fd, std::string* into) {
    if (*fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
    char buf[4096];
    const ssize_t n = read(*fd, buf, sizeof buf);
    if (n > 0) {
      into->append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      close(*fd);
      *fd = -1;
    }
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int out_fd_ = -1;
  int err_fd_ = -1;
  Result result_;
};

// A loopback port that nothing listens on.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

template <typename Message>
Message ParseJson(const std::string& json) {
  Message m;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &m);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return m;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// Line `i` of `text` ("" if there is none).
std::string Line(const std::string& text, size_t i) {
  const std::vector<std::string> lines = Lines(text);
  return i < lines.size() ? lines[i] : "";
}

class InvctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = ShardCluster::Start(kShards).release();
    ASSERT_NE(cluster_, nullptr);
    std::string log;
    server_ = InventorydProcess::Start(cluster_->DsnList(),
                                       {"--log_level=warn"}, &log)
                  .release();
    ASSERT_NE(server_, nullptr) << log;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete cluster_;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  // Runs invctl against the server; $USER is "e2e-user".
  static Result Run(std::vector<std::string> args,
                    std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), {"--addr", server_->address()});
    return RunRaw(args, env);
  }
  // Runs invctl with exactly `args` (no --addr added).
  static Result RunRaw(const std::vector<std::string>& args,
                       std::map<std::string, std::string> env = {}) {
    env.emplace("USER", "e2e-user");
    Invctl child(args, env);
    return child.Wait();
  }
  static std::unique_ptr<Invctl> Start(std::vector<std::string> args) {
    args.insert(args.begin(), {"--addr", server_->address()});
    return std::make_unique<Invctl>(
        args, std::map<std::string, std::string>{{"USER", "e2e-user"}});
  }

  static int64_t NewProductId() { return next_id_++; }
  static std::string Id(int64_t id) { return absl::StrCat(id); }

  // Creates a product through invctl (and checks that it worked).
  static void CreateProduct(int64_t id, int64_t total,
                            std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"product", "create", "--id", Id(id),
                                     "--total", Id(total)};
    args.insert(args.end(), extra.begin(), extra.end());
    const Result r = Run(args);
    ASSERT_EQ(r.exit_code, 0) << r;
  }
  // Reserves through invctl; returns the reservation.
  static v1::Reservation Reserve(int64_t product, int64_t quantity,
                                 const std::string& request_id) {
    const Result r = Run({"-o", "json", "reserve", "--request-id", request_id,
                          "--product", Id(product), "--quantity",
                          Id(quantity), "--customer", "cust-1"});
    EXPECT_EQ(r.exit_code, 0) << r;
    return ParseJson<v1::ReserveItemResponse>(r.out).reservation();
  }

  static ShardCluster* cluster_;
  static InventorydProcess* server_;
  static std::atomic<int64_t> next_id_;
};
ShardCluster* InvctlTest::cluster_ = nullptr;
InventorydProcess* InvctlTest::server_ = nullptr;
std::atomic<int64_t> InvctlTest::next_id_{7000};

// ------------------------------------------------------------ help, usage

TEST_F(InvctlTest, HelpListsEverySubcommand) {
  const std::vector<std::vector<std::string>> helps = {
      {"--help"}, {"help"}, {"-h"}};
  for (const auto& args : helps) {
    const Result r = RunRaw(args);
    EXPECT_EQ(r.exit_code, 0) << r;
    for (const char* command :
         {"health", "shards", "verify", "product create", "product get",
          "product adjust", "product update", "reserve", "release", "commit",
          "reservation get", "reservations list", "adjustments list",
          "events watch", "--addr", "--output", "--timeout", "--actor"}) {
      EXPECT_THAT(r.out, HasSubstr(command)) << r;
    }
    EXPECT_EQ(r.err, "");
  }
  const Result cmd = RunRaw({"help", "product", "adjust"});
  EXPECT_EQ(cmd.exit_code, 0) << cmd;
  EXPECT_THAT(cmd.out, HasSubstr("--reason"));
  const Result flag = RunRaw({"verify", "--help"});
  EXPECT_EQ(flag.exit_code, 0) << flag;
  EXPECT_THAT(flag.out, HasSubstr("Exit code 0 when no drift"));
}

TEST_F(InvctlTest, UsageErrorsExit2WithUsageOnStderr) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"product"},
      {"product", "frob"},
      {"product", "get"},
      {"product", "get", "--id"},
      {"product", "get", "--id", "abc"},
      {"product", "get", "--id", "1", "--bogus"},
      {"product", "get", "--id", "1", "extra"},
      {"--output", "yaml", "health"},
      {"health", "--timeout", "soon"},
      {"health", "--timeout", "-5s"},
      {"product", "create", "--id", "1"},
      {"product", "adjust", "--id", "1", "--delta", "1", "--total", "2",
       "--reason", "restock"},
      {"product", "adjust", "--id", "1", "--delta", "1"},
      {"product", "adjust", "--id", "1", "--delta", "1", "--reason", "lost"},
      {"product", "update", "--id", "1"},
      {"product", "update", "--id", "1", "--policy", "lenient"},
      {"reserve", "--product", "1", "--quantity", "1", "--customer", "c"},
      {"reserve", "--request-id", "r", "--product", "1", "--quantity", "1",
       "--customer", "c", "--ttl", "forever"},
      {"release"},
      {"commit", "a", "b"},
      {"reservation", "get"},
      {"reservations", "list", "--status", "weird"},
      {"reservations", "list", "--all=maybe"},
      {"events", "watch", "--count", "0"},
  };
  for (const auto& args : cases) {
    const Result r = Run(args);
    EXPECT_EQ(r.exit_code, kUsage) << absl::StrJoin(args, " ") << "\n" << r;
    EXPECT_EQ(r.out, "") << absl::StrJoin(args, " ");
    EXPECT_THAT(r.err, HasSubstr("Usage")) << absl::StrJoin(args, " ");
  }
}

// ------------------------------------------------------------------ health

TEST_F(InvctlTest, HealthJsonAndTable) {
  const Result json = Run({"--output", "json", "health"});
  ASSERT_EQ(json.exit_code, 0) << json;
  const auto doc = ParseJson<google::protobuf::Struct>(json.out);
  const auto& services = doc.fields().at("services").list_value();
  ASSERT_EQ(services.values_size(), 2) << json;
  EXPECT_EQ(services.values(0).struct_value().fields().at("service").string_value(), "");
  EXPECT_EQ(services.values(1).struct_value().fields().at("service").string_value(),
            "inventory.v1.InventoryService");
  for (const auto& v : services.values()) {
    EXPECT_EQ(v.struct_value().fields().at("status").string_value(), "SERVING");
  }
  const Result table = Run({"health"});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_THAT(table.out, HasSubstr("SERVICE"));
  EXPECT_THAT(table.out, HasSubstr("(server)"));
  EXPECT_THAT(table.out, HasSubstr("inventory.v1.InventoryService  SERVING"));
}

TEST_F(InvctlTest, AddrComesFromTheEnvironmentAndTheFlagWins) {
  const Result env = RunRaw({"health"}, {{"INVCTL_ADDR", server_->address()}});
  EXPECT_EQ(env.exit_code, 0) << env;
  const Result flag = RunRaw(
      {"health", "--addr", server_->address()},
      {{"INVCTL_ADDR", absl::StrCat("127.0.0.1:", ClosedPort())}});
  EXPECT_EQ(flag.exit_code, 0) << flag;
}

TEST_F(InvctlTest, ClosedPortIsUnavailable78) {
  const std::string addr = absl::StrCat("127.0.0.1:", ClosedPort());
  const std::vector<std::vector<std::string>> cases = {
      {"product", "get", "--id", "1"}, {"health"}, {"-o", "json", "shards"}};
  for (const auto& args : cases) {
    std::vector<std::string> full = {"--addr", addr};
    full.insert(full.end(), args.begin(), args.end());
    const Result r = RunRaw(full);
    EXPECT_EQ(r.exit_code, kRpcBase + 14) << r;
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  }
}

TEST_F(InvctlTest, SpentDeadlineIs68) {
  const Result r = Run({"--timeout", "1ns", "product", "get", "--id", "1"});
  EXPECT_EQ(r.exit_code, kRpcBase + 4) << r;
  EXPECT_THAT(r.err, HasSubstr("DEADLINE_EXCEEDED"));
}

// ---------------------------------------------------------------- products

TEST_F(InvctlTest, ProductCreateGetAndErrors) {
  const int64_t id = NewProductId();
  const Result created = Run({"product", "create", "--id", Id(id), "--total",
                              "10", "--threshold", "2", "--output", "json"});
  ASSERT_EQ(created.exit_code, 0) << created;
  const auto p = ParseJson<v1::Product>(created.out);
  EXPECT_EQ(p.product_id(), id);
  EXPECT_EQ(p.total_quantity(), 10);
  EXPECT_EQ(p.available_quantity(), 10);
  EXPECT_EQ(p.low_stock_threshold(), 2);
  EXPECT_EQ(p.stock_policy(), v1::STOCK_POLICY_STRICT);
  EXPECT_FALSE(p.etag().empty());
  // Zero counters are printed too, so scripts always find the key.
  EXPECT_THAT(created.out, HasSubstr("\"reservedQuantity\": \"0\""));

  const Result again = Run({"product", "create", "--id", Id(id), "--total", "1"});
  EXPECT_EQ(again.exit_code, kRpcBase + 6) << again;
  EXPECT_EQ(again.out, "");
  EXPECT_THAT(again.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(again.err, HasSubstr("reason: PRODUCT_EXISTS"));

  const Result table = Run({"product", "get", "--id", Id(id)});
  ASSERT_EQ(table.exit_code, 0) << table;
  const auto lines = Lines(table.out);
  ASSERT_EQ(lines.size(), 2u) << table;
  EXPECT_THAT(lines[0], HasSubstr("PRODUCT"));
  EXPECT_THAT(lines[0], HasSubstr("AVAILABLE"));
  EXPECT_THAT(lines[1], HasSubstr(Id(id)));
  EXPECT_THAT(lines[1], HasSubstr("STRICT"));
  EXPECT_THAT(lines[1], HasSubstr(p.etag()));
  // Global flags after the command words work too.
  const Result json = Run({"product", "get", "--id", Id(id), "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json;
  EXPECT_EQ(ParseJson<v1::Product>(json.out).total_quantity(), 10);

  const Result missing = Run({"product", "get", "--id", "999999999"});
  EXPECT_EQ(missing.exit_code, kRpcBase + 5) << missing;
  EXPECT_EQ(missing.out, "");
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(missing.err, HasSubstr("reason: PRODUCT_NOT_FOUND"));
  EXPECT_THAT(missing.err, HasSubstr("domain: inventory.v1"));

  const Result bad = Run({"product", "create", "--id", "-1", "--total", "5"});
  EXPECT_EQ(bad.exit_code, kRpcBase + 3) << bad;
  EXPECT_THAT(bad.err, HasSubstr("reason: INVALID_ARGUMENT"));
  EXPECT_THAT(bad.err, HasSubstr("field product_id"));
}

TEST_F(InvctlTest, ProductAdjustUpdateAndTheAuditTrail) {
  const int64_t id = NewProductId();
  CreateProduct(id, 10);
  const Result grown =
      Run({"-o", "json", "--actor", "alice@warehouse", "product", "adjust",
           "--id", Id(id), "--delta", "5", "--reason", "restock", "--note",
           "pallet 7"});
  ASSERT_EQ(grown.exit_code, 0) << grown;
  const auto after = ParseJson<v1::Product>(grown.out);
  EXPECT_EQ(after.total_quantity(), 15);

  // A stale etag: ABORTED (64 + 10).
  const auto before = ParseJson<v1::Product>(
      Run({"-o", "json", "product", "get", "--id", Id(id)}).out);
  const Result stale = Run({"product", "adjust", "--id", Id(id), "--total",
                            "12", "--reason", "correction", "--etag", "W/\"x\""});
  EXPECT_EQ(stale.exit_code, kRpcBase + 10) << stale;
  EXPECT_THAT(stale.err, HasSubstr("reason: ETAG_MISMATCH"));
  EXPECT_THAT(stale.err, HasSubstr("metadata: currentEtag=" + before.etag()));
  // The current etag; negative deltas are values, not flags.
  const Result set = Run({"product", "adjust", "--id", Id(id), "--total", "12",
                          "--reason", "correction", "--etag", before.etag()});
  ASSERT_EQ(set.exit_code, 0) << set;
  EXPECT_THAT(Line(set.out, 1), HasSubstr("12"));
  const Result shrink = Run({"-o", "json", "product", "adjust", "--id", Id(id),
                             "--delta", "-2", "--reason", "damage"});
  ASSERT_EQ(shrink.exit_code, 0) << shrink;
  EXPECT_EQ(ParseJson<v1::Product>(shrink.out).total_quantity(), 10);

  // Update: the mask is exactly the flags given.
  const Result both = Run({"-o", "json", "product", "update", "--id", Id(id),
                           "--policy", "backorder", "--threshold", "3"});
  ASSERT_EQ(both.exit_code, 0) << both;
  auto updated = ParseJson<v1::Product>(both.out);
  EXPECT_EQ(updated.stock_policy(), v1::STOCK_POLICY_BACKORDER);
  EXPECT_EQ(updated.low_stock_threshold(), 3);
  const Result one = Run({"-o", "json", "product", "update", "--id", Id(id),
                          "--threshold", "4"});
  ASSERT_EQ(one.exit_code, 0) << one;
  updated = ParseJson<v1::Product>(one.out);
  EXPECT_EQ(updated.stock_policy(), v1::STOCK_POLICY_BACKORDER);
  EXPECT_EQ(updated.low_stock_threshold(), 4);
  const Result table = Run({"product", "update", "--id", Id(id), "--policy",
                            "STRICT", "--etag", updated.etag()});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_THAT(table.out, HasSubstr("STRICT"));
  const Result wrong = Run({"product", "update", "--id", Id(id), "--policy",
                            "strict", "--etag", "not-the-etag"});
  EXPECT_EQ(wrong.exit_code, kRpcBase + 10) << wrong;

  // The audit trail: who (--actor, else $USER), why, before and after.
  const Result audit =
      Run({"-o", "json", "adjustments", "list", "--product", Id(id)});
  ASSERT_EQ(audit.exit_code, 0) << audit;
  const auto list = ParseJson<v1::ListStockAdjustmentsResponse>(audit.out);
  ASSERT_EQ(list.stock_adjustments_size(), 3) << audit;
  EXPECT_EQ(list.stock_adjustments(0).actor(), "alice@warehouse");
  EXPECT_EQ(list.stock_adjustments(0).reason(),
            v1::STOCK_ADJUSTMENT_REASON_RESTOCK);
  EXPECT_EQ(list.stock_adjustments(0).note(), "pallet 7");
  EXPECT_EQ(list.stock_adjustments(0).total_before(), 10);
  EXPECT_EQ(list.stock_adjustments(0).total_after(), 15);
  EXPECT_EQ(list.stock_adjustments(1).actor(), "e2e-user");
  EXPECT_EQ(list.stock_adjustments(2).reason(),
            v1::STOCK_ADJUSTMENT_REASON_DAMAGE);
  const Result audit_table =
      Run({"adjustments", "list", "--product", Id(id), "--page-size", "1", "--all"});
  ASSERT_EQ(audit_table.exit_code, 0) << audit_table;
  const auto rows = Lines(audit_table.out);
  ASSERT_EQ(rows.size(), 4u) << audit_table;
  EXPECT_THAT(rows[1], HasSubstr("RESTOCK"));
  EXPECT_THAT(rows[1], HasSubstr("+5"));
  EXPECT_THAT(rows[1], HasSubstr("alice@warehouse"));
  EXPECT_THAT(rows[1], HasSubstr("pallet 7"));
  EXPECT_THAT(rows[3], HasSubstr("-2"));
}

// ------------------------------------------------------------ reservations

TEST_F(InvctlTest, ReserveCommitReleaseGet) {
  const int64_t id = NewProductId();
  CreateProduct(id, 5);
  const std::string rid = absl::StrCat("invctl-", id, "-a");
  const Result first = Run({"-o", "json", "reserve", "--request-id", rid,
                            "--product", Id(id), "--quantity", "2",
                            "--customer", "cust-9", "--ttl", "30s"});
  ASSERT_EQ(first.exit_code, 0) << first;
  const auto made = ParseJson<v1::ReserveItemResponse>(first.out);
  EXPECT_FALSE(made.replayed());
  const v1::Reservation& r = made.reservation();
  EXPECT_EQ(r.status(), v1::RESERVATION_STATUS_PENDING);
  EXPECT_EQ(r.quantity(), 2);
  EXPECT_EQ(r.customer_id(), "cust-9");
  EXPECT_EQ(r.request_id(), rid);
  EXPECT_NEAR(r.expire_time().seconds() - r.create_time().seconds(), 30, 1);

  // A retry with the same request id replays (table output).
  const Result retry = Run({"reserve", "--request-id", rid, "--product",
                            Id(id), "--quantity", "2", "--customer", "cust-9",
                            "--ttl", "30s"});
  ASSERT_EQ(retry.exit_code, 0) << retry;
  EXPECT_THAT(Line(retry.out, 0), HasSubstr("REPLAYED"));
  EXPECT_THAT(Line(retry.out, 1), HasSubstr(r.reservation_id()));
  EXPECT_THAT(Line(retry.out, 1), HasSubstr("yes"));

  // More than is left: FAILED_PRECONDITION (64 + 9), OUT_OF_STOCK.
  const Result oos = Run({"reserve", "--request-id", rid + "-big", "--product",
                          Id(id), "--quantity", "10", "--customer", "cust-9"});
  EXPECT_EQ(oos.exit_code, kRpcBase + 9) << oos;
  EXPECT_EQ(oos.out, "");
  EXPECT_THAT(oos.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(oos.err, HasSubstr("reason: OUT_OF_STOCK"));
  EXPECT_THAT(oos.err, HasSubstr("metadata: available=3"));
  EXPECT_THAT(oos.err, HasSubstr("metadata: requested=10"));

  const Result got = Run({"reservation", "get", r.reservation_id()});
  ASSERT_EQ(got.exit_code, 0) << got;
  EXPECT_THAT(got.out, HasSubstr("PENDING"));
  EXPECT_THAT(got.out, HasSubstr("cust-9"));

  const Result committed = Run({"-o", "json", "commit", r.reservation_id()});
  ASSERT_EQ(committed.exit_code, 0) << committed;
  EXPECT_EQ(ParseJson<v1::CommitReservationResponse>(committed.out)
                .reservation()
                .status(),
            v1::RESERVATION_STATUS_PURCHASED);
  const Result not_pending = Run({"release", r.reservation_id()});
  EXPECT_EQ(not_pending.exit_code, kRpcBase + 9) << not_pending;
  EXPECT_THAT(not_pending.err, HasSubstr("reason: RESERVATION_NOT_PENDING"));

  const v1::Reservation second = Reserve(id, 1, absl::StrCat("invctl-", id, "-b"));
  const Result released = Run({"release", second.reservation_id()});
  ASSERT_EQ(released.exit_code, 0) << released;
  EXPECT_THAT(released.out, HasSubstr("RELEASED"));
  const Result got_json =
      Run({"-o", "json", "reservation", "get", second.reservation_id()});
  ASSERT_EQ(got_json.exit_code, 0) << got_json;
  EXPECT_EQ(ParseJson<v1::Reservation>(got_json.out).status(),
            v1::RESERVATION_STATUS_RELEASED);

  const auto product =
      ParseJson<v1::Product>(Run({"-o", "json", "product", "get", "--id", Id(id)}).out);
  EXPECT_EQ(product.purchased_quantity(), 2);
  EXPECT_EQ(product.reserved_quantity(), 0);
  EXPECT_EQ(product.available_quantity(), 3);
}

TEST_F(InvctlTest, ReservationsListFiltersAndFollowsPages) {
  const int64_t id = NewProductId();
  CreateProduct(id, 10);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(Reserve(id, 1, absl::StrCat("list-", id, "-", i)).reservation_id());
  }
  ASSERT_EQ(Run({"commit", ids[0]}).exit_code, 0);

  const Result all = Run({"-o", "json", "reservations", "list", "--product", Id(id)});
  ASSERT_EQ(all.exit_code, 0) << all;
  EXPECT_EQ(ParseJson<v1::ListReservationsResponse>(all.out).reservations_size(), 3);

  const Result pending = Run({"-o", "json", "reservations", "list", "--product",
                              Id(id), "--status", "pending"});
  ASSERT_EQ(pending.exit_code, 0) << pending;
  const auto p = ParseJson<v1::ListReservationsResponse>(pending.out);
  ASSERT_EQ(p.reservations_size(), 2);
  for (const auto& r : p.reservations()) {
    EXPECT_EQ(r.status(), v1::RESERVATION_STATUS_PENDING);
  }

  const Result page = Run({"-o", "json", "reservations", "list", "--product",
                           Id(id), "--page-size", "1"});
  ASSERT_EQ(page.exit_code, 0) << page;
  const auto one = ParseJson<v1::ListReservationsResponse>(page.out);
  EXPECT_EQ(one.reservations_size(), 1);
  EXPECT_FALSE(one.next_page_token().empty());

  const Result every = Run({"-o", "json", "reservations", "list", "--product",
                            Id(id), "--page-size", "1", "--all"});
  ASSERT_EQ(every.exit_code, 0) << every;
  const auto merged = ParseJson<v1::ListReservationsResponse>(every.out);
  ASSERT_EQ(merged.reservations_size(), 3);
  EXPECT_EQ(merged.next_page_token(), "");
  std::vector<std::string> seen;
  for (const auto& r : merged.reservations()) seen.push_back(r.reservation_id());
  EXPECT_THAT(seen, ::testing::UnorderedElementsAreArray(ids));

  // Table: one page, and a hint on stderr about the rest.
  const Result table = Run({"reservations", "list", "--product", Id(id),
                            "--page-size", "2"});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_EQ(Lines(table.out).size(), 3u) << table;
  EXPECT_THAT(Line(table.out, 0), HasSubstr("RESERVATION"));
  EXPECT_THAT(table.err, HasSubstr("--page-token"));
  const Result next = Run({"-o", "json", "reservations", "list", "--product",
                           Id(id), "--page-size", "1", "--page-token",
                           one.next_page_token()});
  ASSERT_EQ(next.exit_code, 0) << next;
  const auto second = ParseJson<v1::ListReservationsResponse>(next.out);
  ASSERT_EQ(second.reservations_size(), 1);
  EXPECT_NE(second.reservations(0).reservation_id(),
            one.reservations(0).reservation_id());
}

// ------------------------------------------------------------------ events

TEST_F(InvctlTest, EventsWatchStopsAfterCountResumesAndHonoursTimeout) {
  const int64_t id = NewProductId();
  CreateProduct(id, 4, {"--threshold", "2"});
  Reserve(id, 3, absl::StrCat("ev-", id, "-low"));   // LOW_STOCK (1 left)
  Reserve(id, 1, absl::StrCat("ev-", id, "-out"));   // OUT_OF_STOCK

  const Result json = Run({"-o", "json", "events", "watch", "--count", "1",
                           "--timeout", "30s"});
  ASSERT_EQ(json.exit_code, 0) << json;
  const auto lines = Lines(json.out);
  ASSERT_EQ(lines.size(), 1u) << json;
  const auto first = ParseJson<v1::WatchInventoryEventsResponse>(lines[0]);
  EXPECT_FALSE(first.cursor().empty());
  EXPECT_GT(first.event().product_id(), 0);
  EXPECT_NE(first.event().type(), v1::INVENTORY_EVENT_TYPE_UNSPECIFIED);

  // Resume after it, table output: the header and one more event.
  const Result resumed = Run({"events", "watch", "--cursor", first.cursor(),
                              "--count", "1", "--timeout", "30s"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed;
  const auto rows = Lines(resumed.out);
  ASSERT_EQ(rows.size(), 2u) << resumed;
  EXPECT_THAT(rows[0], HasSubstr("EVENT"));
  EXPECT_THAT(rows[1], Not(HasSubstr(first.cursor())));

  // Without --count, the deadline ends the watch window normally; every
  // event so far is printed, one JSON object per line, ours among them.
  const Result window = Run({"-o", "json", "events", "watch", "--timeout", "3s"});
  ASSERT_EQ(window.exit_code, 0) << window;
  int ours = 0;
  for (const std::string& line : Lines(window.out)) {
    const auto m = ParseJson<v1::WatchInventoryEventsResponse>(line);
    if (m.event().product_id() == id) ++ours;
  }
  EXPECT_EQ(ours, 2) << window;
  // With --count not reached, the deadline is a failure: 64 + 4.
  const Result short_of = Run({"-o", "json", "events", "watch", "--count",
                               "100000", "--timeout", "2s"});
  EXPECT_EQ(short_of.exit_code, kRpcBase + 4) << short_of;
  EXPECT_THAT(short_of.err, HasSubstr("DEADLINE_EXCEEDED"));
}

TEST_F(InvctlTest, EventsWatchEndsCleanlyOnCtrlC) {
  const int64_t id = NewProductId();
  CreateProduct(id, 1);
  Reserve(id, 1, absl::StrCat("ctrlc-", id));  // OUT_OF_STOCK
  auto watch = Start({"events", "watch"});
  // Wait for the header and at least one event row, then interrupt.
  ASSERT_TRUE(watch->ReadUntil(
      [](const std::string& out) { return Lines(out).size() >= 2; },
      absl::Seconds(30)))
      << watch->out();
  watch->Signal(SIGINT);
  const Result r = watch->Wait(absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r;
}

// ------------------------------------------------------------------ verify

TEST_F(InvctlTest, VerifyExits0WhenCleanAnd1WithADriftTable) {
  const int64_t id = NewProductId();
  CreateProduct(id, 10);
  Reserve(id, 2, absl::StrCat("verify-", id));
  const Result clean = Run({"-o", "json", "verify"});
  ASSERT_EQ(clean.exit_code, 0) << clean;
  const auto report = ParseJson<v1::VerifyInventoryResponse>(clean.out);
  EXPECT_EQ(report.drifts_size(), 0);
  EXPECT_GT(report.products_checked(), 0);
  EXPECT_EQ(report.unreachable_shards_size(), 0);
  const Result clean_table = Run({"verify"});
  ASSERT_EQ(clean_table.exit_code, 0) << clean_table;
  EXPECT_THAT(clean_table.out, HasSubstr("drifts: 0"));

  // Corrupt a counter behind the service's back: exit 1 and the drift.
  const std::string& dsn = cluster_->dsn(static_cast<int>(id % kShards));
  Exec(dsn, absl::StrCat("UPDATE products SET reserved_quantity = 5 "
                         "WHERE product_id = ", id));
  const Result dirty = Run({"verify"});
  Exec(dsn, absl::StrCat("UPDATE products SET reserved_quantity = 2 "
                         "WHERE product_id = ", id));
  EXPECT_EQ(dirty.exit_code, 1) << dirty;
  const auto rows = Lines(dirty.out);
  ASSERT_GE(rows.size(), 2u) << dirty;
  EXPECT_THAT(rows[0], HasSubstr("COMPUTED"));
  EXPECT_THAT(rows[1], HasSubstr(Id(id)));
  EXPECT_THAT(rows[1], HasSubstr("reserved_quantity"));
  EXPECT_THAT(dirty.out, HasSubstr("drifts: 1"));
  EXPECT_EQ(Run({"verify"}).exit_code, 0);
}

// ------------------------------------------------------------------ shards

TEST_F(InvctlTest, ShardsListsEveryShardReachableWithItsIdentity) {
  const Result json = Run({"-o", "json", "shards"});
  ASSERT_EQ(json.exit_code, 0) << json;
  const auto resp = ParseJson<v1::CheckShardsResponse>(json.out);
  ASSERT_EQ(resp.shards_size(), kShards) << json;
  for (int i = 0; i < kShards; ++i) {
    const v1::ShardStatus& s = resp.shards(i);
    EXPECT_EQ(s.shard(), i);
    EXPECT_TRUE(s.reachable()) << json.out;
    EXPECT_TRUE(s.identity_matches()) << json.out;
    EXPECT_EQ(s.recorded_index(), i);
    EXPECT_EQ(s.recorded_count(), kShards);
    EXPECT_FALSE(s.endpoint().empty());
  }
  const Result table = Run({"shards", "--shard-timeout", "2s"});
  ASSERT_EQ(table.exit_code, 0) << table;
  const auto rows = Lines(table.out);
  ASSERT_EQ(rows.size(), 1u + kShards) << table;
  EXPECT_THAT(rows[0], HasSubstr("IDENTITY"));
  for (int i = 0; i < kShards; ++i) {
    EXPECT_THAT(rows[1 + i], HasSubstr(absl::StrCat(i, "/", kShards, " ok")));
    EXPECT_THAT(rows[1 + i], HasSubstr("yes"));
  }
}

}  // namespace
}  // namespace inventory::testing
