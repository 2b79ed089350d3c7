// InventoryService handlers for stock administration: AdjustStock,
// UpdateProduct and the cross-shard lists (ListReservations,
// ListStockAdjustments).
#include <functional>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "inventory/api/convert.h"
#include "inventory/api/inventory_service.h"
#include "inventory/api/page_token.h"
#include "inventory/common/errors.h"

namespace inventory {

namespace v1 = ::inventory::v1;

std::string CallerIdentity(const grpc::CallbackServerContext* context) {
  const auto& md = context->client_metadata();
  auto it = md.find("inventory-actor");
  if (it != md.end()) {
    std::string actor(it->second.data(),
                      std::min<size_t>(it->second.size(), 128));
    bool printable = !actor.empty();
    for (unsigned char c : actor) printable = printable && c >= 0x20 && c < 0x7f;
    if (printable) return actor;
  }
  return absl::StrCat("peer:", context->peer());
}

namespace {

// Finishes `reactor` with a product answer.
std::function<void(absl::StatusOr<ProductRecord>)> FinishProduct(
    grpc::ServerUnaryReactor* reactor, v1::Product* response) {
  return [reactor, response](absl::StatusOr<ProductRecord> record) {
    if (!record.ok()) {
      reactor->Finish(ToGrpcStatus(record.status()));
      return;
    }
    ToProto(*record, response);
    reactor->Finish(grpc::Status::OK);
  };
}

// Walks the shards in `shards` from a page position, collecting up to
// `page_size` records, and hands back the records and the next position (none
// when every shard is exhausted). Each step runs on the shard's executor.
template <typename Record>
class CrossShardPager
    : public std::enable_shared_from_this<CrossShardPager<Record>> {
 public:
  using Fetch = std::function<absl::StatusOr<std::vector<Record>>(
      ShardStore&, int64_t after_id, int limit)>;
  using Done = std::function<void(absl::StatusOr<std::vector<Record>>,
                                  std::optional<PagePosition>)>;

  CrossShardPager(const std::vector<ShardExecutor*>& executors,
                  std::vector<int> shards, PagePosition start, int page_size,
                  absl::Time deadline, Fetch fetch,
                  std::function<int64_t(const Record&)> id_of, Done done)
      : executors_(executors),
        shards_(std::move(shards)),
        position_(start),
        page_size_(page_size),
        deadline_(deadline),
        fetch_(std::move(fetch)),
        id_of_(std::move(id_of)),
        done_(std::move(done)) {
    while (next_ < shards_.size() && shards_[next_] < position_.shard) ++next_;
  }

  void Step() {
    if (next_ >= shards_.size()) {
      done_(std::move(records_), std::nullopt);
      return;
    }
    const int shard = shards_[next_];
    const int64_t after = shard == position_.shard ? position_.after_id : 0;
    const int limit = page_size_ - static_cast<int>(records_.size());
    auto self = this->shared_from_this();
    executors_[shard]->template Submit<std::vector<Record>>(
        deadline_,
        [fetch = fetch_, after, limit](ShardStore& store) {
          return fetch(store, after, limit);
        },
        [self, shard, limit](absl::StatusOr<std::vector<Record>> page) {
          if (!page.ok()) {
            self->done_(page.status(), std::nullopt);
            return;
          }
          const int got = static_cast<int>(page->size());
          for (auto& r : *page) self->records_.push_back(std::move(r));
          if (got == limit) {
            // Page full: resume after its last record on this shard.
            const PagePosition next{shard, self->id_of_(self->records_.back())};
            self->done_(std::move(self->records_), next);
            return;
          }
          ++self->next_;
          self->Step();
        });
  }

 private:
  const std::vector<ShardExecutor*>& executors_;
  const std::vector<int> shards_;
  const PagePosition position_;
  const int page_size_;
  const absl::Time deadline_;
  const Fetch fetch_;
  const std::function<int64_t(const Record&)> id_of_;
  const Done done_;
  size_t next_ = 0;
  std::vector<Record> records_;
};

}  // namespace

grpc::ServerUnaryReactor* InventoryServiceImpl::AdjustStock(
    grpc::CallbackServerContext* context, const v1::AdjustStockRequest* request,
    v1::Product* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AdjustStockCommand> command =
      ValidateAdjustStock(*request, CallerIdentity(context),
                          options_.session_window, limits_);
  if (!command.ok()) {
    reactor->Finish(ToGrpcStatus(command.status()));
    return reactor;
  }
  executors_[router_.ShardForProduct(command->product_id)]
      ->Submit<ProductRecord>(
          DeadlineOf(context),
          [c = *std::move(command)](ShardStore& s) { return s.AdjustStock(c); },
          FinishProduct(reactor, response),
          [context] { return context->IsCancelled(); });
  return reactor;
}

grpc::ServerUnaryReactor* InventoryServiceImpl::UpdateProduct(
    grpc::CallbackServerContext* context,
    const v1::UpdateProductRequest* request, v1::Product* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<ProductUpdate> update =
      ValidateUpdateProduct(*request, limits_);
  if (!update.ok()) {
    reactor->Finish(ToGrpcStatus(update.status()));
    return reactor;
  }
  executors_[router_.ShardForProduct(update->product_id)]
      ->Submit<ProductRecord>(
          DeadlineOf(context),
          [u = *std::move(update)](ShardStore& s) {
            return s.UpdateProduct(u);
          },
          FinishProduct(reactor, response),
          [context] { return context->IsCancelled(); });
  return reactor;
}

namespace {

// A list call's page: its size and where it starts.
struct Paging {
  int page_size;
  PagePosition start;
};

// Checks page_size and page_token (bound to `filters`).
absl::StatusOr<Paging> ParsePaging(int32_t page_size,
                                   const std::string& page_token,
                                   const std::string& filters,
                                   int shard_count) {
  absl::StatusOr<int> size = ValidatePageSize(page_size);
  if (!size.ok()) return size.status();
  Paging paging{*size, PagePosition{}};
  if (!page_token.empty()) {
    absl::StatusOr<PagePosition> start =
        DecodePageToken(page_token, filters, shard_count);
    if (!start.ok()) return start.status();
    paging.start = *start;
  }
  return paging;
}

// Finishes `reactor` with a list page: each record put into `response` by
// `add`, and the next page's token (bound to `filters`) when there is one.
template <typename Record, typename Response, typename Add>
typename CrossShardPager<Record>::Done FinishPage(
    grpc::ServerUnaryReactor* reactor, Response* response, std::string filters,
    Add add) {
  return [reactor, response, filters = std::move(filters), add](
             absl::StatusOr<std::vector<Record>> records,
             std::optional<PagePosition> next) {
    if (!records.ok()) {
      reactor->Finish(ToGrpcStatus(records.status()));
      return;
    }
    for (const Record& record : *records) add(record, response);
    if (next.has_value()) {
      response->set_next_page_token(EncodePageToken(filters, *next));
    }
    reactor->Finish(grpc::Status::OK);
  };
}

// The shards a list visits: the product's, or all in index order.
std::vector<int> ShardsToVisit(const Router& router, int64_t product_id) {
  if (product_id > 0) return {router.ShardForProduct(product_id)};
  std::vector<int> all;
  for (int i = 0; i < router.shard_count(); ++i) all.push_back(i);
  return all;
}

}  // namespace

grpc::ServerUnaryReactor* InventoryServiceImpl::ListReservations(
    grpc::CallbackServerContext* context,
    const v1::ListReservationsRequest* request,
    v1::ListReservationsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<FieldViolation> bad;
  if (request->product_id() < 0) {
    bad.push_back({"product_id", "must be 0 (any) or a product id"});
  }
  if (!v1::ReservationStatus_IsValid(request->status())) {
    bad.push_back({"status", "unknown reservation status"});
  }
  if (!bad.empty()) {
    reactor->Finish(ToGrpcStatus(InvalidArgumentError(std::move(bad))));
    return reactor;
  }
  const std::string filters =
      absl::StrCat("r:", request->product_id(), ":", request->status());
  absl::StatusOr<Paging> paging =
      ParsePaging(request->page_size(), request->page_token(), filters,
                  router_.shard_count());
  if (!paging.ok()) {
    reactor->Finish(ToGrpcStatus(paging.status()));
    return reactor;
  }
  ReservationFilter filter{request->product_id(), request->status()};
  auto pager = std::make_shared<CrossShardPager<ReservationRecord>>(
      executors_, ShardsToVisit(router_, request->product_id()),
      paging->start, paging->page_size, DeadlineOf(context),
      [filter](ShardStore& s, int64_t after, int limit) {
        return s.ListReservations(filter, after, limit);
      },
      [](const ReservationRecord& r) { return r.row_id; },
      FinishPage<ReservationRecord>(
          reactor, response, filters,
          [](const ReservationRecord& r, v1::ListReservationsResponse* out) {
            ToProto(r, out->add_reservations());
          }));
  pager->Step();
  return reactor;
}

grpc::ServerUnaryReactor* InventoryServiceImpl::ListStockAdjustments(
    grpc::CallbackServerContext* context,
    const v1::ListStockAdjustmentsRequest* request,
    v1::ListStockAdjustmentsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->product_id() < 0) {
    reactor->Finish(ToGrpcStatus(InvalidArgumentError(
        {{"product_id", "must be 0 (any) or a product id"}})));
    return reactor;
  }
  const std::string filters = absl::StrCat("a:", request->product_id());
  absl::StatusOr<Paging> paging =
      ParsePaging(request->page_size(), request->page_token(), filters,
                  router_.shard_count());
  if (!paging.ok()) {
    reactor->Finish(ToGrpcStatus(paging.status()));
    return reactor;
  }
  const int64_t product_id = request->product_id();
  auto pager = std::make_shared<CrossShardPager<StockAdjustmentRecord>>(
      executors_, ShardsToVisit(router_, product_id), paging->start,
      paging->page_size, DeadlineOf(context),
      [product_id](ShardStore& s, int64_t after, int limit) {
        return s.ListStockAdjustments(product_id, after, limit);
      },
      [](const StockAdjustmentRecord& a) { return a.id; },
      FinishPage<StockAdjustmentRecord>(
          reactor, response, filters,
          [](const StockAdjustmentRecord& a,
             v1::ListStockAdjustmentsResponse* out) {
            ToProto(a, out->add_stock_adjustments());
          }));
  pager->Step();
  return reactor;
}

}  // namespace inventory
