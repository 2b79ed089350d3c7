// invctl's admin side: `health` (grpc.health.v1), `shards`
// (AdminService.CheckShards) and `verify` (AdminService.VerifyInventory).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "invctl/cli.h"
#include "invctl/output.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace invctl {
namespace {

namespace v1 = ::inventory::v1;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr char kInventoryService[] = "inventory.v1.InventoryService";
constexpr size_t kMaxErrorCell = 80;

// ------------------------------------------------------------------ health

int RunHealth(Invocation& inv) {
  auto stub = Health::NewStub(inv.channel());
  google::protobuf::Struct doc;
  google::protobuf::ListValue* list =
      (*doc.mutable_fields())["services"].mutable_list_value();
  Table table({"SERVICE", "STATUS"});
  bool all_serving = true;
  for (const std::string& service : {std::string(), std::string(kInventoryService)}) {
    HealthCheckRequest req;
    req.set_service(service);
    HealthCheckResponse resp;
    auto ctx = inv.NewContext();
    const grpc::Status s = stub->Check(ctx.get(), req, &resp);
    if (!s.ok()) return inv.RpcFailed(s);
    const std::string status =
        HealthCheckResponse::ServingStatus_Name(resp.status());
    all_serving = all_serving && resp.status() == HealthCheckResponse::SERVING;
    google::protobuf::Struct* entry = list->add_values()->mutable_struct_value();
    (*entry->mutable_fields())["service"].set_string_value(service);
    (*entry->mutable_fields())["status"].set_string_value(status);
    table.AddRow({service.empty() ? "(server)" : service, status});
  }
  if (inv.json()) {
    PrintJson(doc, inv.out());
  } else {
    table.Print(inv.out());
  }
  return all_serving ? kExitOk : kExitCheckFailed;
}

// ------------------------------------------------------------------ shards

std::string Identity(const v1::ShardStatus& s) {
  if (s.recorded_count() <= 0) {
    return s.reachable() ? "none MISMATCH" : "-";
  }
  return absl::StrCat(s.recorded_index(), "/", s.recorded_count(), " ",
                      s.identity_matches() ? "ok" : "MISMATCH");
}

std::string LastError(const v1::ShardStatus& s) {
  if (s.last_error().empty()) return "-";
  std::string text = s.last_error();
  if (text.size() > kMaxErrorCell) text = text.substr(0, kMaxErrorCell - 3) + "...";
  if (s.has_last_error_time()) {
    absl::StrAppend(&text, " (", FormatTime(s.last_error_time()), ")");
  }
  return text;
}

int RunShards(Invocation& inv) {
  v1::CheckShardsRequest req;
  absl::StatusOr<std::optional<absl::Duration>> per_shard =
      inv.args().OptionalDuration("shard-timeout");
  if (!per_shard.ok()) return inv.UsageError(per_shard.status().message());
  if (per_shard->has_value()) {
    const absl::Duration d = **per_shard;
    const int64_t nanos = absl::ToInt64Nanoseconds(d);
    req.mutable_timeout()->set_seconds(nanos / 1000000000);
    req.mutable_timeout()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
    // The call must outlive the slowest shard's check.
    inv.set_default_timeout(d + absl::Seconds(3));
  }
  auto stub = v1::AdminService::NewStub(inv.channel());
  v1::CheckShardsResponse resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = stub->CheckShards(ctx.get(), req, &resp);
  if (!s.ok()) return inv.RpcFailed(s);

  bool healthy = true;
  Table table({"SHARD", "ENDPOINT", "REACHABLE", "LATENCY_MS", "VERSION",
               "IDENTITY", "SCHEMA", "IN_USE/POOL", "QUEUED", "LAST_ERROR"});
  for (const v1::ShardStatus& shard : resp.shards()) {
    healthy = healthy && shard.reachable() && shard.identity_matches();
    table.AddRow({
        absl::StrCat(shard.shard()),
        shard.endpoint(),
        shard.reachable() ? "yes" : "NO",
        shard.reachable() ? FormatMillis(shard.latency()) : "-",
        shard.server_version().empty() ? "-" : shard.server_version(),
        Identity(shard),
        shard.schema_version() > 0 ? absl::StrCat(shard.schema_version()) : "-",
        absl::StrCat(shard.connections_in_use(), "/", shard.pool_size()),
        absl::StrCat(shard.queued_calls()),
        LastError(shard),
    });
  }
  if (inv.json()) {
    PrintJson(resp, inv.out());
  } else {
    table.Print(inv.out());
  }
  return healthy ? kExitOk : kExitCheckFailed;
}

// ------------------------------------------------------------------ verify

int RunVerify(Invocation& inv) {
  auto stub = v1::AdminService::NewStub(inv.channel());
  v1::VerifyInventoryRequest req;
  v1::VerifyInventoryResponse resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = stub->VerifyInventory(ctx.get(), req, &resp);
  if (!s.ok()) return inv.RpcFailed(s);
  const bool clean = resp.drifts_size() == 0 && resp.unreachable_shards_size() == 0;
  if (inv.json()) {
    PrintJson(resp, inv.out());
    return clean ? kExitOk : kExitCheckFailed;
  }
  if (resp.drifts_size() > 0) {
    Table table({"PRODUCT", "SHARD", "FIELD", "RECORDED", "COMPUTED"});
    for (const v1::InventoryDrift& d : resp.drifts()) {
      table.AddRow({absl::StrCat(d.product_id()), absl::StrCat(d.shard()),
                    d.field(), absl::StrCat(d.recorded()),
                    absl::StrCat(d.computed())});
    }
    table.Print(inv.out());
    inv.out() << "\n";
  }
  inv.out() << "products checked: " << resp.products_checked()
            << ", drifts: " << resp.drifts_size();
  if (resp.unreachable_shards_size() > 0) {
    inv.out() << ", unreachable shards (not checked): "
              << absl::StrJoin(resp.unreachable_shards(), ", ");
  }
  inv.out() << "\n";
  return clean ? kExitOk : kExitCheckFailed;
}

}  // namespace

std::vector<Command> AdminCommands() {
  std::vector<Command> commands;
  {
    Command c;
    c.path = {"health"};
    c.summary = "grpc.health.v1 Check of the server and of " +
                std::string(kInventoryService) + " (readiness)";
    c.details =
        "Exit code 1 if either is not SERVING (the service is not ready when "
        "its shards are unreachable).";
    c.run = RunHealth;
    commands.push_back(std::move(c));
  }
  {
    Command c;
    c.path = {"shards"};
    c.synopsis = "[--shard-timeout DURATION]";
    c.summary = "check every shard (AdminService.CheckShards)";
    c.flags = {{"shard-timeout", "DURATION",
                "per-shard timeout of the check (server default 2s, max 30s)"}};
    c.details =
        "Columns: reachable, round trip of a trivial query (ms), PostgreSQL "
        "version,\nrecorded identity index/count and whether it matches the "
        "shard's position,\nschema version, worker connections in use / pool "
        "size, calls queued, last error.\nExit code 1 if any shard is "
        "unreachable or its identity does not match.";
    c.run = RunShards;
    commands.push_back(std::move(c));
  }
  {
    Command c;
    c.path = {"verify"};
    c.summary =
        "recompute counters from reservation rows on every shard "
        "(AdminService.VerifyInventory)";
    c.details =
        "Exit code 0 when no drift was found on any shard; 1 when there is "
        "drift\n(listed in a table: product, shard, field, recorded, computed) "
        "or a shard\ncould not be checked. A full scan: the default deadline "
        "is 30s.";
    c.default_timeout = absl::Seconds(30);
    c.run = RunVerify;
    commands.push_back(std::move(c));
  }
  return commands;
}

}  // namespace invctl
