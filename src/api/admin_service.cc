#include "inventory/api/admin_service.h"

#include <memory>

#include "absl/synchronization/mutex.h"
#include "inventory/api/convert.h"

namespace inventory {

namespace v1 = ::inventory::v1;

AdminServiceImpl::AdminServiceImpl(std::vector<ShardExecutor*> executors,
                                   absl::Duration default_deadline)
    : executors_(std::move(executors)), default_deadline_(default_deadline) {}

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
    size_t pending;
    std::vector<absl::StatusOr<ShardVerification>> results;
  };
  auto gather = std::make_shared<Gather>();
  gather->pending = executors_.size();
  gather->results.resize(executors_.size(),
                         absl::UnknownError("not answered"));
  for (size_t shard = 0; shard < executors_.size(); ++shard) {
    executors_[shard]->Submit<ShardVerification>(
        deadline, [](ShardStore& store) { return store.VerifyCounters(); },
        [gather, shard, reactor, response](
            absl::StatusOr<ShardVerification> result) {
          bool last = false;
          {
            absl::MutexLock lock(&gather->mu);
            gather->results[shard] = std::move(result);
            last = --gather->pending == 0;
          }
          if (!last) return;
          for (size_t s = 0; s < gather->results.size(); ++s) {
            const auto& r = gather->results[s];
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
