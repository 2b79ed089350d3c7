#include "inventory/api/admin_service.h"

#include <algorithm>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "inventory/api/convert.h"
#include "inventory/api/validation.h"
#include "inventory/common/errors.h"

namespace inventory {

namespace v1 = ::inventory::v1;

AdminServiceImpl::AdminServiceImpl(std::vector<ShardView> shards,
                                   absl::Duration default_deadline)
    : shards_(std::move(shards)), default_deadline_(default_deadline) {}

namespace {

// What one shard's check found.
struct ShardProbe {
  absl::Duration latency;
  ShardDescription description;
};

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::CheckShards(
    grpc::CallbackServerContext* context,
    const v1::CheckShardsRequest* request, v1::CheckShardsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Duration timeout = absl::Seconds(2);
  if (request->has_timeout()) {
    const std::optional<absl::Duration> d = ToDuration(request->timeout());
    if (d.has_value()) timeout = *d;
    if (!d.has_value() || timeout <= absl::ZeroDuration() ||
        timeout > absl::Seconds(30)) {
      reactor->Finish(ToGrpcStatus(InvalidArgumentError(
          {{"timeout", "must be between 1 ns and 30 s"}})));
      return reactor;
    }
  }
  const int n = static_cast<int>(shards_.size());
  for (int i = 0; i < n; ++i) {
    auto* s = response->add_shards();
    s->set_shard(i);
    s->set_endpoint(shards_[i].dsn.Endpoint());
    s->set_dsn(shards_[i].dsn.Redacted());
    s->set_pool_size(shards_[i].pool_size);
  }
  struct Gather {
    absl::Mutex mu;
    int pending ABSL_GUARDED_BY(mu);
  };
  auto gather = std::make_shared<Gather>();
  {
    absl::MutexLock lock(&gather->mu);
    gather->pending = n;
  }
  // Every shard at once, each bounded by `timeout` and by the client's own
  // deadline (the executor answers just before it even if the shard never
  // does), so a short client deadline still gets the shards that answered.
  const absl::Time deadline = std::min(
      absl::Now() + timeout, absl::FromChrono(context->deadline()));
  for (int i = 0; i < n; ++i) {
    const ShardView& view = shards_[i];
    view.executor->Submit<ShardProbe>(
        deadline,
        [](ShardStore& store) -> absl::StatusOr<ShardProbe> {
          const absl::Time start = absl::Now();
          if (absl::Status s = store.Ping(); !s.ok()) return s;
          ShardProbe probe;
          probe.latency = absl::Now() - start;
          absl::StatusOr<ShardDescription> d = store.Describe();
          if (!d.ok()) return d.status();
          probe.description = *std::move(d);
          return probe;
        },
        [gather, i, n, view, reactor, response](
            absl::StatusOr<ShardProbe> probe) {
          bool last = false;
          {
            absl::MutexLock lock(&gather->mu);
            auto* s = response->mutable_shards(i);
            s->set_connections_in_use(view.executor->busy());
            s->set_queued_calls(static_cast<int32_t>(view.executor->queued()));
            s->set_recorded_index(-1);
            s->set_recorded_count(-1);
            if (probe.ok()) {
              const ShardDescription& d = probe->description;
              s->set_reachable(true);
              SetDuration(probe->latency, s->mutable_latency());
              s->set_server_version(d.server_version);
              s->set_recorded_index(d.recorded_index);
              s->set_recorded_count(d.recorded_count);
              s->set_identity_matches(d.recorded_index == i &&
                                      d.recorded_count == n);
              s->set_schema_version(d.schema_version);
            }
            ShardHealth::Failure failure =
                view.health->LastFailure(absl::Now());
            if (!probe.ok() && failure.what.empty()) {
              failure.what = std::string(probe.status().message());
            }
            s->set_last_error(failure.what);
            if (failure.when != absl::InfinitePast()) {
              SetTime(failure.when, s->mutable_last_error_time());
            }
            last = --gather->pending == 0;
          }
          if (last) reactor->Finish(grpc::Status::OK);
        });
  }
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::VerifyInventory(
    grpc::CallbackServerContext* context,
    const v1::VerifyInventoryRequest* request,
    v1::VerifyInventoryResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // A full scan of every shard: allow it the client's deadline, or at least
  // 30 s when the client sets none.
  absl::Time deadline = absl::FromChrono(context->deadline());
  const absl::Time fallback =
      absl::Now() + std::max(default_deadline_, absl::Seconds(30));
  if (deadline > fallback) deadline = fallback;

  struct Gather {
    absl::Mutex mu;
    size_t pending ABSL_GUARDED_BY(mu);
    std::vector<absl::StatusOr<ShardVerification>> results ABSL_GUARDED_BY(mu);
  };
  auto gather = std::make_shared<Gather>();
  {
    absl::MutexLock lock(&gather->mu);
    gather->pending = shards_.size();
    gather->results.resize(shards_.size(), absl::UnknownError("not answered"));
  }
  for (size_t shard = 0; shard < shards_.size(); ++shard) {
    shards_[shard].executor->Submit<ShardVerification>(
        deadline, [](ShardStore& store) { return store.VerifyCounters(); },
        [gather, shard, reactor, response](
            absl::StatusOr<ShardVerification> result) {
          std::vector<absl::StatusOr<ShardVerification>> results;
          {
            absl::MutexLock lock(&gather->mu);
            gather->results[shard] = std::move(result);
            if (--gather->pending != 0) return;
            results = std::move(gather->results);  // the last answer
          }
          for (size_t s = 0; s < results.size(); ++s) {
            const auto& r = results[s];
            if (!r.ok()) {
              response->add_unreachable_shards(static_cast<int>(s));
              continue;
            }
            response->set_products_checked(response->products_checked() +
                                           r->products_checked);
            for (const auto& d : r->drifts) {
              auto* out = response->add_drifts();
              out->set_product_id(d.product_id);
              out->set_shard(static_cast<int>(s));
              out->set_field(d.field);
              out->set_recorded(d.recorded);
              out->set_computed(d.computed);
            }
          }
          reactor->Finish(grpc::Status::OK);
        });
  }
  return reactor;
}

}  // namespace inventory
