// End to end: inventoryd as a process against 3 real shards — health,
// reflection, graceful stop, and refusal of a shard list in the wrong order or
// of the wrong length.
#include <csignal>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpc_client.h"
#include "gtest/gtest.h"
#include "inventoryd_process.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

constexpr int kServing = 1;
constexpr int kNotServing = 2;

class StartupTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = ShardCluster::Start(3).release();
    ASSERT_NE(cluster_, nullptr);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static ShardCluster* cluster_;
};
ShardCluster* StartupTest::cluster_ = nullptr;

// Lists the services a server offers through server reflection, as
// `grpcurl list` does.
std::vector<std::string> ListServices(const std::string& address) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      Connect(address));
  auto ctx = ContextWithTimeout(absl::Seconds(5));
  auto stream = stub->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("*");
  std::vector<std::string> names;
  if (!stream->Write(req)) return names;
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& s : resp.list_services_response().service()) {
      names.push_back(s.name());
    }
  }
  stream->Finish();
  return names;
}

// Asks reflection for the file that defines `symbol`; true if found.
bool DescribeSymbol(const std::string& address, const std::string& symbol) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      Connect(address));
  auto ctx = ContextWithTimeout(absl::Seconds(5));
  auto stream = stub->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_file_containing_symbol(symbol);
  stream->Write(req);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  bool found = false;
  while (stream->Read(&resp)) {
    found = found || resp.file_descriptor_response().file_descriptor_proto_size() > 0;
  }
  stream->Finish();
  return found;
}

TEST_F(StartupTest, ServesHealthAndReflection) {
  std::string log;
  auto server = InventorydProcess::Start(cluster_->DsnList(), {}, &log);
  ASSERT_NE(server, nullptr) << log;
  auto channel = Connect(server->address());
  EXPECT_EQ(HealthStatus(channel, ""), kServing);
  EXPECT_EQ(HealthStatus(channel, "inventory.v1.InventoryService"), kServing);
  EXPECT_THAT(ListServices(server->address()),
              IsSupersetOf({"inventory.v1.InventoryService",
                            "grpc.health.v1.Health"}));
  EXPECT_TRUE(DescribeSymbol(server->address(),
                             "inventory.v1.InventoryService.ReserveItem"));
  // The log names the shards with their password redacted.
  EXPECT_THAT(server->Log(), HasSubstr("password=***"));
}

TEST_F(StartupTest, MultiHostShardStringIsOneShard) {
  // Each shard's string lists two hosts, the first refusing connections
  // (port 1): libpq falls through to the second, and the commas of the
  // host and port lists do not split the shard list (it still has 3).
  std::vector<std::string> dsns;
  for (std::string dsn : cluster_->dsns()) {
    const size_t at = dsn.find("port=");
    ASSERT_NE(at, std::string::npos) << "no port in the shard's DSN";
    dsn.insert(at + 5, "1,");
    const size_t host = dsn.find("host=");
    ASSERT_NE(host, std::string::npos);
    const size_t end = dsn.find(' ', host);
    const std::string name = dsn.substr(host + 5, end - host - 5);
    dsn.insert(end, "," + name);
    dsns.push_back(dsn);
  }
  ASSERT_THAT(dsns[0], HasSubstr("port=1,"));
  std::string log;
  auto server = InventorydProcess::Start(absl::StrJoin(dsns, ", "), {}, &log);
  ASSERT_NE(server, nullptr) << log;
  EXPECT_EQ(HealthStatus(Connect(server->address()), ""), kServing);
}

TEST_F(StartupTest, LogNeverShowsThePassword) {
  auto server = InventorydProcess::Start(cluster_->DsnList());
  ASSERT_NE(server, nullptr);
  // Every DSN of the cluster has the same password; find it and make sure
  // the log does not contain it.
  const std::string& dsn = cluster_->dsn(0);
  size_t at = dsn.find("password=");
  ASSERT_NE(at, std::string::npos);
  std::string password = dsn.substr(at + 9, dsn.find(' ', at) - at - 9);
  ASSERT_FALSE(password.empty());
  server->Signal(SIGTERM);
  EXPECT_EQ(server->WaitExit(absl::Seconds(20)), 0);
  EXPECT_THAT(server->Log(), Not(HasSubstr(password)));
}

TEST_F(StartupTest, SigtermStopsCleanlyWithExitZero) {
  auto server = InventorydProcess::Start(cluster_->DsnList());
  ASSERT_NE(server, nullptr);
  server->Signal(SIGTERM);
  EXPECT_EQ(server->WaitExit(absl::Seconds(20)), 0) << server->Log();
  EXPECT_THAT(server->Log(), HasSubstr("inventoryd stopped"));
}

TEST_F(StartupTest, ShuffledShardListIsRefused) {
  // Make sure identities are recorded in the right order first.
  {
    auto server = InventorydProcess::Start(cluster_->DsnList());
    ASSERT_NE(server, nullptr);
  }
  std::string log;
  int code = InventorydProcess::RunToExit(cluster_->DsnList({1, 0, 2}), {},
                                          &log);
  EXPECT_NE(code, 0) << log;
  EXPECT_NE(code, -1) << "inventoryd did not exit: " << log;
  EXPECT_THAT(log, HasSubstr("shard at position 0"));
  EXPECT_THAT(log, HasSubstr("was initialised as shard 1 of 3"));
}

TEST_F(StartupTest, ShardListOfOtherLengthIsRefused) {
  {
    auto server = InventorydProcess::Start(cluster_->DsnList());
    ASSERT_NE(server, nullptr);
  }
  std::string log;
  int code =
      InventorydProcess::RunToExit(cluster_->DsnList({0, 1}), {}, &log);
  EXPECT_NE(code, 0) << log;
  EXPECT_NE(code, -1) << log;
  EXPECT_THAT(log, HasSubstr("of 3, but the list puts it at index 0 of 2"));
}

TEST_F(StartupTest, AShardWhoseIdentityChangesStopsTheService) {
  // A one-shard cluster of its own: its identity row gets rewritten, as if
  // the connection string now reached another shard's database.
  auto solo = ShardCluster::Start(1);
  ASSERT_NE(solo, nullptr);
  auto server = InventorydProcess::Start(solo->DsnList());
  ASSERT_NE(server, nullptr);
  Exec(solo->dsn(0), "UPDATE shard_identity SET shard_index = 3, "
                     "shard_count = 4");
  const int code = server->WaitExit(absl::Seconds(15));
  EXPECT_EQ(code, 1) << server->Log();
  EXPECT_THAT(server->Log(), HasSubstr("now says it is shard 3 of 4"));
}

TEST_F(StartupTest, BadFlagsAreUsageErrors) {
  std::string log;
  EXPECT_EQ(InventorydProcess::RunToExit("", {}, &log), 2);
  EXPECT_THAT(log, HasSubstr("--shards is empty"));
  EXPECT_EQ(InventorydProcess::RunToExit(cluster_->DsnList() + ",", {}, &log),
            2);
  EXPECT_THAT(log, HasSubstr("is empty (stray comma?)"));
  EXPECT_EQ(InventorydProcess::RunToExit(cluster_->DsnList(),
                                         {"--default_hold_ttl=0s"}, &log),
            2);
  // The batch lane: at least one connection, at most all of them.
  EXPECT_EQ(InventorydProcess::RunToExit(cluster_->DsnList(),
                                         {"--batch_connections=0"}, &log),
            2);
  EXPECT_THAT(log, HasSubstr("--batch_connections must be 1..--shard_connections"));
  EXPECT_EQ(InventorydProcess::RunToExit(
                cluster_->DsnList(),
                {"--shard_connections=2", "--batch_connections=3"}, &log),
            2);
  EXPECT_THAT(log, HasSubstr("--batch_connections must be 1..--shard_connections"));
  // Each broken rule is named by its flag, and only the broken ones.
  EXPECT_EQ(InventorydProcess::RunToExit(cluster_->DsnList(),
                                         {"--max_concurrent_streams=0"}, &log),
            2);
  EXPECT_THAT(log, HasSubstr("--max_concurrent_streams must be positive"));
  EXPECT_THAT(log, Not(HasSubstr("--max_quantity")));
  // A sweep interval of 0 would sweep in a busy loop; a negative drain
  // timeout means nothing.
  EXPECT_EQ(InventorydProcess::RunToExit(
                cluster_->DsnList(),
                {"--sweep_interval=0s", "--drain_timeout=-1s"}, &log),
            2);
  EXPECT_THAT(log, HasSubstr("--sweep_interval must be at least 10ms; "
                             "--drain_timeout must not be negative"));
}

// gRPC's default SO_REUSEPORT would let a second instance share a port that
// is taken, and half the new connections would reach it.
TEST_F(StartupTest, APortAlreadyServedIsRefused) {
  auto first = InventorydProcess::Start(cluster_->DsnList());
  ASSERT_NE(first, nullptr);
  std::string log;
  EXPECT_EQ(InventorydProcess::RunToExit(
                cluster_->DsnList(),
                {absl::StrCat("--listen=127.0.0.1:", first->port())}, &log),
            1)
      << log;
  EXPECT_THAT(log, HasSubstr("cannot listen on 127.0.0.1:"));
}

TEST_F(StartupTest, ReadinessFollowsShardReachability) {
  // A one-shard service over shard 2 of a separate cluster, so stopping it
  // affects nobody else.
  auto solo = ShardCluster::Start(1);
  ASSERT_NE(solo, nullptr);
  auto server = InventorydProcess::Start(solo->DsnList());
  ASSERT_NE(server, nullptr);
  auto channel = Connect(server->address());
  EXPECT_EQ(HealthStatus(channel, "inventory.v1.InventoryService"), kServing);
  solo->Kill(0);
  int status = kServing;
  for (int i = 0; i < 100 && status == kServing; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    status = HealthStatus(channel, "inventory.v1.InventoryService");
  }
  EXPECT_EQ(status, kNotServing);
  // Liveness (the whole server) does not depend on the database.
  EXPECT_EQ(HealthStatus(channel, ""), kServing);
  solo->StartShard(0);
  for (int i = 0; i < 100 && status != kServing; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    status = HealthStatus(channel, "inventory.v1.InventoryService");
  }
  EXPECT_EQ(status, kServing);
}

}  // namespace
}  // namespace inventory::testing
