#include "inventory/api/inventory_service.h"

#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "inventory/api/convert.h"
#include "inventory/common/errors.h"

namespace inventory {

namespace v1 = ::inventory::v1;

namespace {

// Lets the executor skip work whose caller already gave up.
std::function<bool()> CancelProbe(grpc::CallbackServerContext* context) {
  return [context] { return context->IsCancelled(); };
}

}  // namespace

InventoryServiceImpl::InventoryServiceImpl(
    Router router, std::vector<ShardExecutor*> executors,
    ServiceOptions options)
    : router_(router),
      executors_(std::move(executors)),
      options_(std::move(options)) {}

InventoryServiceImpl::~InventoryServiceImpl() { StopWatchers(); }

absl::Time InventoryServiceImpl::DeadlineOf(
    const grpc::CallbackServerContext* context) const {
  // gRPC reports "no deadline" as the far future.
  const absl::Time client = absl::FromChrono(context->deadline());
  const absl::Time now = absl::Now();
  if (client - now > absl::Hours(24 * 365)) {
    return now + options_.default_deadline;
  }
  return client;
}

grpc::ServerUnaryReactor* InventoryServiceImpl::ReserveItem(
    grpc::CallbackServerContext* context, const v1::ReserveItemRequest* request,
    v1::ReserveItemResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<ReserveCommand> command = ValidateReserve(*request, limits_);
  if (!command.ok()) {
    reactor->Finish(ToGrpcStatus(command.status()));
    return reactor;
  }
  const int shard = router_.ShardForProduct(command->product_id);
  ReservationOp op;
  op.kind = ReservationOp::Kind::kReserve;
  op.reserve = *std::move(command);
  executors_[shard]->SubmitOp(
      DeadlineOf(context), std::move(op),
      [reactor, response, metrics = options_.metrics](
          absl::StatusOr<ReserveOutcome> outcome) {
        if (metrics != nullptr) {
          metrics->CountReservation(ClassifyReservation(
              outcome.status(), outcome.ok() && outcome->replayed));
        }
        if (!outcome.ok()) {
          reactor->Finish(ToGrpcStatus(outcome.status()));
          return;
        }
        ToProto(outcome->reservation, response->mutable_reservation());
        response->set_replayed(outcome->replayed);
        reactor->Finish(grpc::Status::OK);
      },
      CancelProbe(context));
  return reactor;
}

namespace {

// Runs a by-reservation-id call (release, commit, get) on the right shard.
template <typename Response, typename StoreCall, typename Fill>
grpc::ServerUnaryReactor* ByReservationId(
    grpc::CallbackServerContext* context, const std::string& reservation_id,
    const Router& router, const std::vector<ShardExecutor*>& executors,
    absl::Time deadline, Response* response, StoreCall store_call, Fill fill) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<ReservationKey> key = ValidateReservationId(reservation_id);
  if (!key.ok()) {
    reactor->Finish(ToGrpcStatus(key.status()));
    return reactor;
  }
  executors[router.ShardForReservation(*key)]->Submit<ReservationRecord>(
      deadline,
      [k = *key, store_call](ShardStore& store) {
        return store_call(store, k);
      },
      [reactor, response, fill](absl::StatusOr<ReservationRecord> record) {
        if (!record.ok()) {
          reactor->Finish(ToGrpcStatus(record.status()));
          return;
        }
        fill(*record, response);
        reactor->Finish(grpc::Status::OK);
      },
      CancelProbe(context));
  return reactor;
}

}  // namespace

namespace {

// Runs a release or commit (batchable) on the reservation's shard.
template <typename Response>
grpc::ServerUnaryReactor* ReleaseOrCommit(
    grpc::CallbackServerContext* context, const std::string& reservation_id,
    ReservationOp::Kind kind, const Router& router,
    const std::vector<ShardExecutor*>& executors, absl::Time deadline,
    Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<ReservationKey> key = ValidateReservationId(reservation_id);
  if (!key.ok()) {
    reactor->Finish(ToGrpcStatus(key.status()));
    return reactor;
  }
  ReservationOp op;
  op.kind = kind;
  op.product_id = key->product_id;
  op.row_id = key->row_id;
  executors[router.ShardForReservation(*key)]->SubmitOp(
      deadline, std::move(op),
      [reactor, response](absl::StatusOr<ReserveOutcome> outcome) {
        if (!outcome.ok()) {
          reactor->Finish(ToGrpcStatus(outcome.status()));
          return;
        }
        ToProto(outcome->reservation, response->mutable_reservation());
        reactor->Finish(grpc::Status::OK);
      },
      CancelProbe(context));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* InventoryServiceImpl::ReleaseItem(
    grpc::CallbackServerContext* context, const v1::ReleaseItemRequest* request,
    v1::ReleaseItemResponse* response) {
  return ReleaseOrCommit(context, request->reservation_id(),
                         ReservationOp::Kind::kRelease, router_, executors_,
                         DeadlineOf(context), response);
}

grpc::ServerUnaryReactor* InventoryServiceImpl::CommitReservation(
    grpc::CallbackServerContext* context,
    const v1::CommitReservationRequest* request,
    v1::CommitReservationResponse* response) {
  return ReleaseOrCommit(context, request->reservation_id(),
                         ReservationOp::Kind::kCommit, router_, executors_,
                         DeadlineOf(context), response);
}

grpc::ServerUnaryReactor* InventoryServiceImpl::GetReservation(
    grpc::CallbackServerContext* context,
    const v1::GetReservationRequest* request, v1::Reservation* response) {
  return ByReservationId(
      context, request->reservation_id(), router_, executors_,
      DeadlineOf(context), response,
      [](ShardStore& s, ReservationKey k) {
        return s.GetReservation(k.product_id, k.row_id);
      },
      [](const ReservationRecord& r, v1::Reservation* out) { ToProto(r, out); });
}

grpc::ServerUnaryReactor* InventoryServiceImpl::CreateProduct(
    grpc::CallbackServerContext* context,
    const v1::CreateProductRequest* request, v1::Product* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<NewProduct> product = ValidateCreateProduct(*request, limits_);
  if (!product.ok()) {
    reactor->Finish(ToGrpcStatus(product.status()));
    return reactor;
  }
  executors_[router_.ShardForProduct(product->product_id)]
      ->Submit<ProductRecord>(
          DeadlineOf(context),
          [p = *product](ShardStore& store) { return store.CreateProduct(p); },
          [reactor, response](absl::StatusOr<ProductRecord> record) {
            if (!record.ok()) {
              reactor->Finish(ToGrpcStatus(record.status()));
              return;
            }
            ToProto(*record, response);
            reactor->Finish(grpc::Status::OK);
          },
          CancelProbe(context));
  return reactor;
}

grpc::ServerUnaryReactor* InventoryServiceImpl::GetProduct(
    grpc::CallbackServerContext* context, const v1::GetProductRequest* request,
    v1::Product* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = ValidateProductId(request->product_id()); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  const int64_t id = request->product_id();
  executors_[router_.ShardForProduct(id)]->Submit<ProductRecord>(
      DeadlineOf(context),
      [id](ShardStore& store) { return store.GetProduct(id); },
      [reactor, response](absl::StatusOr<ProductRecord> record) {
        if (!record.ok()) {
          reactor->Finish(ToGrpcStatus(record.status()));
          return;
        }
        ToProto(*record, response);
        reactor->Finish(grpc::Status::OK);
      },
      CancelProbe(context));
  return reactor;
}

namespace {

// Gathers GetAvailability's per-shard answers; the last one finishes the call.
class AvailabilityFanOut {
 public:
  AvailabilityFanOut(grpc::ServerUnaryReactor* reactor,
                     v1::GetAvailabilityResponse* response,
                     std::vector<int64_t> ids, int pending_shards)
      : reactor_(reactor),
        response_(response),
        ids_(std::move(ids)),
        pending_(pending_shards) {}

  void ShardDone(const std::vector<int64_t>& asked,
                 absl::StatusOr<std::vector<AvailabilityRecord>> result) {
    bool last = false;
    {
      absl::MutexLock lock(&mu_);
      if (result.ok()) {
        for (const auto& r : *result) available_[r.product_id] = r.available;
      } else {
        for (int64_t id : asked) unavailable_.insert(id);
      }
      last = --pending_ == 0;
    }
    if (last) Finish();
  }

 private:
  void Finish() {
    absl::MutexLock lock(&mu_);
    for (int64_t id : ids_) {
      if (unavailable_.count(id) > 0) {
        response_->add_unavailable_product_ids(id);
      } else if (auto it = available_.find(id); it != available_.end()) {
        auto* a = response_->add_availabilities();
        a->set_product_id(id);
        a->set_available_quantity(it->second);
      } else {
        response_->add_not_found_product_ids(id);
      }
    }
    reactor_->Finish(grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* const reactor_;
  v1::GetAvailabilityResponse* const response_;
  const std::vector<int64_t> ids_;
  absl::Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, int64_t> available_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<int64_t> unavailable_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* InventoryServiceImpl::GetAvailability(
    grpc::CallbackServerContext* context,
    const v1::GetAvailabilityRequest* request,
    v1::GetAvailabilityResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::vector<int64_t>> ids =
      ValidateAvailability(*request, limits_);
  if (!ids.ok()) {
    reactor->Finish(ToGrpcStatus(ids.status()));
    return reactor;
  }
  std::vector<std::vector<int64_t>> by_shard(executors_.size());
  for (int64_t id : *ids) by_shard[router_.ShardForProduct(id)].push_back(id);
  int shards = 0;
  for (const auto& group : by_shard) shards += !group.empty();
  auto fan_out = std::make_shared<AvailabilityFanOut>(reactor, response,
                                                      *std::move(ids), shards);
  const absl::Time deadline = DeadlineOf(context);
  for (size_t shard = 0; shard < by_shard.size(); ++shard) {
    if (by_shard[shard].empty()) continue;
    executors_[shard]->Submit<std::vector<AvailabilityRecord>>(
        deadline,
        [asked = by_shard[shard]](ShardStore& store) {
          return store.GetAvailability(asked);
        },
        [fan_out, asked = by_shard[shard]](
            absl::StatusOr<std::vector<AvailabilityRecord>> result) {
          fan_out->ShardDone(asked, std::move(result));
        });
  }
  return reactor;
}

}  // namespace inventory
