// End to end: what operators rely on — Prometheus /metrics after known
// traffic, CheckShards with a hung shard, JSON access logs that stay valid
// for odd input, and SIGTERM during load (drain, exit 0, nothing lost).
#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc_client.h"
#include "gtest/gtest.h"
#include "inventoryd_process.h"
#include "poll_until.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {
namespace {

namespace v1 = ::inventory::v1;
using ::testing::HasSubstr;

constexpr int kShards = 3;

// GET http://127.0.0.1:port/path; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  std::string req = absl::StrCat("GET ", path,
                                 " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  close(fd);
  size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

// The value of the sample whose line starts with `series` (name{labels}).
double Sample(const std::string& metrics, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double v = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  return -1;
}

int MetricsPort(const std::string& log) {
  std::smatch m;
  std::regex re("metrics on port ([0-9]+)");
  if (!std::regex_search(log, m, re)) return 0;
  return std::stoi(m[1]);
}

class OperationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = ShardCluster::Start(kShards).release();
    ASSERT_NE(cluster_, nullptr);
  }
  static void TearDownTestSuite() { delete cluster_; }
  static ShardCluster* cluster_;
};
ShardCluster* OperationsTest::cluster_ = nullptr;

TEST_F(OperationsTest, MetricsCountKnownTraffic) {
  std::string log;
  auto server = InventorydProcess::Start(
      cluster_->DsnList(), {"--metrics_listen=127.0.0.1:0"}, &log);
  ASSERT_NE(server, nullptr) << log;
  const int port = MetricsPort(server->Log());
  ASSERT_GT(port, 0) << server->Log();
  auto stub = v1::InventoryService::NewStub(Connect(server->address()));
  // Before any traffic every method's series exists (pre-initialised).
  std::string before = HttpGet(port, "/metrics");
  const std::string reserve_labels =
      "grpc_method=\"ReserveItem\",grpc_service=\"inventory.v1."
      "InventoryService\",grpc_type=\"unary\"";
  EXPECT_EQ(Sample(before, "grpc_server_started_total{" + reserve_labels + "}"),
            0);
  EXPECT_EQ(Sample(before, "grpc_server_handled_total{grpc_code=\"OK\"," +
                               reserve_labels + "}"),
            0);
  EXPECT_EQ(Sample(before,
                   "grpc_server_started_total{grpc_method=\"VerifyInventory\","
                   "grpc_service=\"inventory.v1.AdminService\","
                   "grpc_type=\"unary\"}"),
            0);
  EXPECT_EQ(Sample(before, "inventory_backorder_late_fill_units_total"), 0);
  // Known traffic: 5 granted, 2 out of stock, 1 replayed, 3 invalid.
  ASSERT_TRUE(CreateProduct(*stub, 77, 5).ok());
  for (int i = 0; i < 7; ++i) Reserve(*stub, absl::StrCat("m-", i), 77, 1, "c");
  ASSERT_TRUE(Reserve(*stub, "m-0", 77, 1, "c").ok());  // replay
  for (int i = 0; i < 3; ++i) Reserve(*stub, "", 77, 1, "c");
  std::string after = HttpGet(port, "/metrics");
  EXPECT_EQ(Sample(after, "grpc_server_started_total{" + reserve_labels + "}"),
            11);
  EXPECT_EQ(Sample(after, "grpc_server_handled_total{grpc_code=\"OK\"," +
                              reserve_labels + "}"),
            6);
  EXPECT_EQ(Sample(after, "grpc_server_handled_total{grpc_code="
                          "\"FailedPrecondition\"," + reserve_labels + "}"),
            2);
  EXPECT_EQ(Sample(after, "grpc_server_handled_total{grpc_code="
                          "\"InvalidArgument\"," + reserve_labels + "}"),
            3);
  EXPECT_EQ(Sample(after, "grpc_server_handling_seconds_count{" +
                              reserve_labels + "}"),
            11);
  EXPECT_EQ(Sample(after, "inventory_reservations_total{outcome=\"granted\"}"),
            5);
  EXPECT_EQ(
      Sample(after, "inventory_reservations_total{outcome=\"out_of_stock\"}"),
      2);
  EXPECT_EQ(Sample(after, "inventory_reservations_total{outcome=\"replayed\"}"),
            1);
  EXPECT_EQ(Sample(after, "inventory_shard_reachable{shard=\"0\"}"), 1);
  // Database work was timed on product 77's shard (77 mod 3 = 2).
  EXPECT_GE(Sample(after, "inventory_shard_call_seconds_count{shard=\"2\"}"), 8);
  // No label carries a product id.
  EXPECT_THAT(after, ::testing::Not(HasSubstr("product")));
}

// A CheckShards timeout that is not a positive, well-formed duration of at
// most 30 s is INVALID_ARGUMENT naming `timeout`, and probes nothing.
TEST_F(OperationsTest, CheckShardsRefusesABadTimeout) {
  std::string log;
  auto server = InventorydProcess::Start(cluster_->DsnList(), {}, &log);
  ASSERT_NE(server, nullptr) << log;
  auto admin = v1::AdminService::NewStub(Connect(server->address()));
  const std::vector<std::pair<int64_t, int32_t>> bad = {
      {0, 0}, {-1, 0}, {0, -1}, {31, 0}, {1, -5}, {-1, 5}, {0, 1000000000}};
  for (const auto& [seconds, nanos] : bad) {
    v1::CheckShardsRequest req;
    req.mutable_timeout()->set_seconds(seconds);
    req.mutable_timeout()->set_nanos(nanos);
    v1::CheckShardsResponse resp;
    auto ctx = ContextWithTimeout(absl::Seconds(10));
    grpc::Status s = admin->CheckShards(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << seconds << "s " << nanos << "ns";
    const google::rpc::BadRequest br = BadRequestOf(s);
    ASSERT_EQ(br.field_violations_size(), 1) << seconds << "s " << nanos << "ns";
    EXPECT_EQ(br.field_violations(0).field(), "timeout");
    EXPECT_EQ(resp.shards_size(), 0);
  }
}

TEST_F(OperationsTest, CheckShardsShowsAHungShardWithinItsTimeout) {
  std::string log;
  auto server = InventorydProcess::Start(cluster_->DsnList(), {}, &log);
  ASSERT_NE(server, nullptr) << log;
  auto admin = v1::AdminService::NewStub(Connect(server->address()));
  {
    v1::CheckShardsRequest req;
    v1::CheckShardsResponse resp;
    auto ctx = ContextWithTimeout(absl::Seconds(10));
    ASSERT_TRUE(admin->CheckShards(ctx.get(), req, &resp).ok());
    ASSERT_EQ(resp.shards_size(), kShards);
    for (int i = 0; i < kShards; ++i) {
      const auto& s = resp.shards(i);
      EXPECT_TRUE(s.reachable()) << i;
      EXPECT_TRUE(s.identity_matches()) << i;
      EXPECT_EQ(s.recorded_index(), i);
      EXPECT_EQ(s.recorded_count(), kShards);
      EXPECT_THAT(s.server_version(), ::testing::StartsWith("15"));
      EXPECT_GE(s.schema_version(), 2);
      EXPECT_EQ(s.pool_size(), 2);  // --shard_connections default
      EXPECT_THAT(s.dsn(), HasSubstr("password=***"));
    }
  }
  cluster_->Pause(1);
  struct Resume {
    ~Resume() { cluster->Resume(1); }
    ShardCluster* cluster;
  } resume{cluster_};
  v1::CheckShardsRequest req;
  req.mutable_timeout()->set_nanos(800 * 1000 * 1000);
  v1::CheckShardsResponse resp;
  auto ctx = ContextWithTimeout(absl::Seconds(10));
  const absl::Time start = absl::Now();
  ASSERT_TRUE(admin->CheckShards(ctx.get(), req, &resp).ok());
  const absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Milliseconds(1500)) << "a hung shard cost more than "
                                               "its own timeout";
  EXPECT_TRUE(resp.shards(0).reachable());
  EXPECT_FALSE(resp.shards(1).reachable());
  EXPECT_TRUE(resp.shards(2).reachable());

  // A client deadline shorter than the timeout bounds the probes too: the
  // call still succeeds in time, with the shards that answered.
  {
    v1::CheckShardsRequest r;
    r.mutable_timeout()->set_seconds(5);
    v1::CheckShardsResponse out;
    auto c = ContextWithTimeout(absl::Milliseconds(700));
    grpc::Status st = admin->CheckShards(c.get(), r, &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(out.shards_size(), kShards);
    EXPECT_TRUE(out.shards(0).reachable());
    EXPECT_FALSE(out.shards(1).reachable());
    EXPECT_TRUE(out.shards(2).reachable());
  }

  // Once the monitor's probe has hung past 2 s, the hang is shard 1's last
  // error, dated, and it stays so after the shard is back.
  auto check = [&] {
    v1::CheckShardsRequest r;
    r.mutable_timeout()->set_nanos(500 * 1000 * 1000);
    v1::CheckShardsResponse out;
    auto c = ContextWithTimeout(absl::Seconds(10));
    EXPECT_TRUE(admin->CheckShards(c.get(), r, &out).ok());
    return out;
  };
  const bool hang_shown = PollUntil([&] {
    const v1::CheckShardsResponse r = check();
    return r.shards_size() == kShards &&
           absl::StrContains(r.shards(1).last_error(), "hung") &&
           r.shards(1).has_last_error_time();
  }, absl::Seconds(10), absl::Milliseconds(100));
  EXPECT_TRUE(hang_shown) << "CheckShards never said shard 1 was hung: "
                          << check().shards(1).last_error();
  cluster_->Resume(1);
  const bool back = PollUntil([&] {
    return check().shards(1).reachable();
  }, absl::Seconds(10), absl::Milliseconds(100));
  ASSERT_TRUE(back) << "shard 1 not reachable 10 s after its resume";
  const v1::CheckShardsResponse after = check();
  EXPECT_THAT(after.shards(1).last_error(), HasSubstr("hung"));
  EXPECT_TRUE(after.shards(1).has_last_error_time());
  EXPECT_EQ(after.shards(0).last_error(), "");
}

// --max_concurrent_streams bounds the calls one client connection has in
// progress. With 2, six reserves sent at once on one channel to a hung
// shard start two at a time on the server (grpc_server_started_total); the
// others wait in the client, and all six are granted once the shard is
// back. Fails if the limit is not applied: the server then starts all six.
TEST_F(OperationsTest, StreamLimitBoundsCallsInProgressPerConnection) {
  std::string log;
  auto server = InventorydProcess::Start(
      cluster_->DsnList(),
      {"--metrics_listen=127.0.0.1:0", "--max_concurrent_streams=2"}, &log);
  ASSERT_NE(server, nullptr) << log;
  const int port = MetricsPort(server->Log());
  ASSERT_GT(port, 0) << server->Log();
  auto stub = v1::InventoryService::NewStub(Connect(server->address()));
  constexpr int64_t kProduct = 777001;  // on shard 1
  static_assert(kProduct % kShards == 1);
  ASSERT_TRUE(CreateProduct(*stub, kProduct, 10).ok());
  const std::string started =
      "grpc_server_started_total{grpc_method=\"ReserveItem\",grpc_service="
      "\"inventory.v1.InventoryService\",grpc_type=\"unary\"}";
  ASSERT_EQ(Sample(HttpGet(port, "/metrics"), started), 0);

  cluster_->Pause(1);
  struct Resume {
    ~Resume() {
      if (cluster != nullptr) cluster->Resume(1);
    }
    ShardCluster* cluster;
  } resume{cluster_};
  constexpr int kCalls = 6;
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      statuses[i] =
          Reserve(*stub, absl::StrCat("streams-", i), kProduct, 1, "c");
    });
  }
  // The first two are stuck on the hung shard; the server has not seen the
  // other four (and would have by now: a call reaches it in microseconds).
  absl::SleepFor(absl::Milliseconds(700));
  EXPECT_EQ(Sample(HttpGet(port, "/metrics"), started), 2);
  cluster_->Resume(1);
  resume.cluster = nullptr;
  for (auto& t : callers) t.join();
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
  }
  EXPECT_EQ(Sample(HttpGet(port, "/metrics"), started), kCalls);
  v1::Product p;
  ASSERT_TRUE(GetProduct(*stub, kProduct, &p).ok());
  EXPECT_EQ(p.reserved_quantity(), kCalls);
}

TEST_F(OperationsTest, JsonLogLinesStayValidForOddInput) {
  std::string log;
  auto server = InventorydProcess::Start(cluster_->DsnList(),
                                         {"--log_format=json"}, &log);
  ASSERT_NE(server, nullptr) << log;
  auto stub = v1::InventoryService::NewStub(Connect(server->address()));
  ASSERT_TRUE(CreateProduct(*stub, 301, 5).ok());
  Reserve(*stub, "ok-1", 301, 1, "c");
  Reserve(*stub, "quote\"back\\slash\nnewline", 301, 1, "c");
  Reserve(*stub, std::string("bad\xff\xfeutf8\x01", 10), 301, 1, "c");
  Reserve(*stub, "ok-2", 301, 1, std::string("\x7f\x1b[31m", 6));
  server->Signal(SIGTERM);
  ASSERT_EQ(server->WaitExit(absl::Seconds(20)), 0);
  int rpc_lines = 0;
  for (absl::string_view line : absl::StrSplit(server->Log(), '\n')) {
    if (line.empty()) continue;
    google::protobuf::Struct parsed;
    auto status = google::protobuf::util::JsonStringToMessage(
        std::string(line), &parsed);
    EXPECT_TRUE(status.ok()) << "not JSON: " << line;
    ASSERT_TRUE(parsed.fields().count("ts")) << line;
    ASSERT_TRUE(parsed.fields().count("level")) << line;
    if (parsed.fields().count("event") &&
        parsed.fields().at("event").string_value() == "rpc") {
      ++rpc_lines;
      for (const char* key :
           {"method", "code", "duration_ms", "request_id", "shard", "peer"}) {
        EXPECT_TRUE(parsed.fields().count(key)) << key << " missing: " << line;
      }
    }
  }
  EXPECT_EQ(rpc_lines, 5);
}

// A WatchInventoryEvents stream open when the instance stops ends
// UNAVAILABLE with reason SERVICE_STOPPING (the client resumes from its last
// cursor elsewhere), and the instance still exits cleanly.
TEST_F(OperationsTest, AWatchStreamEndsServiceStoppingAtShutdown) {
  std::string log;
  auto server = InventorydProcess::Start(cluster_->DsnList(), {}, &log);
  ASSERT_NE(server, nullptr) << log;
  auto stub = v1::InventoryService::NewStub(Connect(server->address()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::WatchInventoryEventsRequest req;
  auto reader = stub->WatchInventoryEvents(&ctx, req);
  // The stream is known to be open once an event has arrived on it.
  ASSERT_TRUE(CreateProduct(*stub, 303, 5).ok());
  ASSERT_TRUE(Reserve(*stub, "watch-stop-1", 303, 5, "c").ok());  // out of stock
  v1::WatchInventoryEventsResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  server->Signal(SIGTERM);
  while (reader->Read(&msg)) {
  }
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), "SERVICE_STOPPING") << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("last cursor"));
  EXPECT_EQ(server->WaitExit(absl::Seconds(20)), 0) << server->Log();
}

// Access-log lines are written in bulk (observability/log_sink.h), but a
// running server still shows each call's line within the flush interval, not
// only when it stops.
TEST_F(OperationsTest, AccessLogLineAppearsWhileServing) {
  std::string log;
  auto server = InventorydProcess::Start(cluster_->DsnList(), {}, &log);
  ASSERT_NE(server, nullptr) << log;
  auto stub = v1::InventoryService::NewStub(Connect(server->address()));
  ASSERT_TRUE(CreateProduct(*stub, 302, 5).ok());
  Reserve(*stub, "access-log-1", 302, 1, "c");
  EXPECT_TRUE(inventory::testing::PollUntil(
      [&] {
        return server->Log().find("request_id=access-log-1") !=
               std::string::npos;
      },
      absl::Seconds(5)))
      << server->Log();
  // A stop writes what is still held.
  Reserve(*stub, "access-log-2", 302, 1, "c");
  server->Signal(SIGTERM);
  ASSERT_EQ(server->WaitExit(absl::Seconds(20)), 0);
  EXPECT_THAT(server->Log(), HasSubstr("request_id=access-log-2"));
}

TEST_F(OperationsTest, SigtermDuringLoadDrainsAndLosesNothing) {
  std::string log;
  auto server = InventorydProcess::Start(
      cluster_->DsnList(), {"--drain_timeout=10s", "--log_rpcs=false"}, &log);
  ASSERT_NE(server, nullptr) << log;
  const int64_t product = 4242;
  {
    auto stub = v1::InventoryService::NewStub(Connect(server->address()));
    ASSERT_TRUE(CreateProduct(*stub, product, 100000).ok());
  }
  absl::Mutex mu;
  std::vector<std::string> acknowledged;
  std::vector<std::string> unknown;  // no answer we can trust: retry them
  std::map<int, int> codes;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto stub = v1::InventoryService::NewStub(Connect(server->address()));
      for (int i = 0; !stop && i < 100000; ++i) {
        v1::ReserveItemResponse resp;
        grpc::Status s = Reserve(*stub, absl::StrCat("term-", t, "-", i),
                                 product, 1, "c", &resp);
        absl::MutexLock lock(&mu);
        ++codes[s.error_code()];
        if (s.ok()) {
          acknowledged.push_back(resp.reservation().request_id());
        } else {
          unknown.push_back(absl::StrCat("term-", t, "-", i));
        }
        if (s.error_code() == grpc::StatusCode::UNAVAILABLE) break;
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(800));
  server->Signal(SIGTERM);
  const int code = server->WaitExit(absl::Seconds(30));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(code, 0) << server->Log();
  EXPECT_THAT(server->Log(), HasSubstr("inventoryd stopped"));
  // Answers were OK until the server stopped taking calls; then UNAVAILABLE
  // (refused) or CANCELLED (accepted by the transport but never started).
  // Never INTERNAL, never a deadline cut.
  for (const auto& [c, n] : codes) {
    EXPECT_TRUE(c == grpc::StatusCode::OK ||
                c == grpc::StatusCode::UNAVAILABLE ||
                c == grpc::StatusCode::CANCELLED)
        << "code " << c << " x" << n;
  }
  // Retrying the calls without a trusted answer on a new instance is safe:
  // each gets exactly one reservation.
  auto again = InventorydProcess::Start(cluster_->DsnList(),
                                        {"--log_rpcs=false"}, &log);
  ASSERT_NE(again, nullptr) << log;
  auto stub = v1::InventoryService::NewStub(Connect(again->address()));
  for (const std::string& rid : unknown) {
    EXPECT_TRUE(Reserve(*stub, rid, product, 1, "c").ok()) << rid;
  }
  ASSERT_GT(acknowledged.size(), 0u);
  // Every acknowledged reservation is on the shard, and the counters agree.
  const std::string dsn = cluster_->dsn(product % kShards);
  const int64_t rows = QueryInt(
      dsn, absl::StrCat("SELECT count(*) FROM reservations WHERE product_id = ",
                        product));
  EXPECT_EQ(rows, static_cast<int64_t>(acknowledged.size() + unknown.size()));
  EXPECT_EQ(QueryInt(dsn, absl::StrCat("SELECT reserved_quantity FROM products "
                                       "WHERE product_id = ", product)),
            rows);
  for (int s = 0; s < kShards; ++s) EXPECT_EQ(CounterDrift(cluster_->dsn(s)), 0);
}

}  // namespace
}  // namespace inventory::testing
