// invctl's inventory side: products (create, get, adjust, update),
// reservations (reserve, release, commit, get, list), the stock adjustment
// audit trail and the event stream, all on inventory.v1.InventoryService.
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "invctl/cli.h"
#include "invctl/interrupt.h"
#include "invctl/output.h"
#include "invctl/rpc_error.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace invctl {
namespace {

namespace v1 = ::inventory::v1;

// Usage errors travel as InvalidArgument statuses from the request builders
// to the command, which turns them into exit code 2.
#define INVCTL_RETURN_IF_ERROR(expr)       \
  do {                                     \
    const absl::Status _status = (expr);   \
    if (!_status.ok()) return _status;     \
  } while (0)

// Reads flag `name` with `reader` into *out, returning the usage error if any.
template <typename T>
absl::Status Read(absl::StatusOr<T> value, T* out) {
  if (!value.ok()) return value.status();
  *out = *std::move(value);
  return absl::OkStatus();
}

std::unique_ptr<v1::InventoryService::Stub> Stub(Invocation& inv) {
  return v1::InventoryService::NewStub(inv.channel());
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// -------------------------------------------------------------- printing

std::string Policy(v1::StockPolicy p) {
  return ShortEnumName(v1::StockPolicy_descriptor(), p);
}

void PrintProduct(const v1::Product& p, std::ostream& out) {
  Table t({"PRODUCT", "TOTAL", "RESERVED", "PURCHASED", "AVAILABLE",
           "BACKORDERED", "POLICY", "THRESHOLD", "ETAG", "UPDATED"});
  t.AddRow({absl::StrCat(p.product_id()), absl::StrCat(p.total_quantity()),
            absl::StrCat(p.reserved_quantity()),
            absl::StrCat(p.purchased_quantity()),
            absl::StrCat(p.available_quantity()),
            absl::StrCat(p.backordered_quantity()), Policy(p.stock_policy()),
            absl::StrCat(p.low_stock_threshold()), p.etag(),
            FormatTime(p.update_time())});
  t.Print(out);
}

const std::vector<std::string>& ReservationHeaders() {
  static const auto* h = new std::vector<std::string>{
      "RESERVATION", "PRODUCT", "QTY", "BACKORDERED", "STATUS", "CUSTOMER",
      "REQUEST_ID", "CREATED", "EXPIRES", "UPDATED"};
  return *h;
}

std::vector<std::string> ReservationRow(const v1::Reservation& r) {
  return {r.reservation_id(),
          absl::StrCat(r.product_id()),
          absl::StrCat(r.quantity()),
          absl::StrCat(r.backordered_quantity()),
          ShortEnumName(v1::ReservationStatus_descriptor(), r.status()),
          r.customer_id(),
          r.request_id(),
          FormatTime(r.create_time()),
          FormatTime(r.expire_time()),
          FormatTime(r.update_time())};
}

void PrintReservation(const v1::Reservation& r, std::ostream& out) {
  Table t(ReservationHeaders());
  t.AddRow(ReservationRow(r));
  t.Print(out);
}

// Prints `resp` as JSON or with `table`; the common end of a unary call.
template <typename Message>
int Finish(Invocation& inv, const grpc::Status& status, const Message& resp,
           const std::function<void(const Message&, std::ostream&)>& table) {
  if (!status.ok()) return inv.RpcFailed(status);
  if (inv.json()) {
    PrintJson(resp, inv.out());
  } else {
    table(resp, inv.out());
  }
  return kExitOk;
}

// -------------------------------------------------------------- products

absl::StatusOr<v1::StockPolicy> PolicyFlag(const ParsedArgs& args, bool* given) {
  absl::StatusOr<std::optional<std::string>> v =
      args.OptionalChoice("policy", {"strict", "backorder"});
  if (!v.ok()) return v.status();
  *given = v->has_value();
  if (!*given) return v1::STOCK_POLICY_UNSPECIFIED;
  return **v == "strict" ? v1::STOCK_POLICY_STRICT : v1::STOCK_POLICY_BACKORDER;
}

absl::Status BuildCreate(const ParsedArgs& a, v1::CreateProductRequest* req) {
  int64_t id = 0, total = 0;
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredInt64("id"), &id));
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredInt64("total"), &total));
  bool given = false;
  v1::StockPolicy policy = v1::STOCK_POLICY_UNSPECIFIED;
  INVCTL_RETURN_IF_ERROR(Read(PolicyFlag(a, &given), &policy));
  std::optional<int64_t> threshold;
  INVCTL_RETURN_IF_ERROR(Read(a.OptionalInt64("threshold"), &threshold));
  req->set_product_id(id);
  req->set_total_quantity(total);
  req->set_stock_policy(policy);
  req->set_low_stock_threshold(threshold.value_or(0));
  return absl::OkStatus();
}

int RunProductCreate(Invocation& inv) {
  v1::CreateProductRequest req;
  if (absl::Status s = BuildCreate(inv.args(), &req); !s.ok()) {
    return inv.UsageError(s.message());
  }
  v1::Product resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->CreateProduct(ctx.get(), req, &resp);
  return Finish<v1::Product>(inv, s, resp, PrintProduct);
}

int RunProductGet(Invocation& inv) {
  v1::GetProductRequest req;
  int64_t id = 0;
  if (absl::Status s = Read(inv.args().RequiredInt64("id"), &id); !s.ok()) {
    return inv.UsageError(s.message());
  }
  req.set_product_id(id);
  v1::Product resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->GetProduct(ctx.get(), req, &resp);
  return Finish<v1::Product>(inv, s, resp, PrintProduct);
}

const std::vector<std::string>& ReasonWords() {
  static const auto* words = new std::vector<std::string>{
      "restock", "return", "damage", "correction", "shrinkage", "other"};
  return *words;
}

absl::Status BuildAdjust(const ParsedArgs& a, v1::AdjustStockRequest* req) {
  int64_t id = 0;
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredInt64("id"), &id));
  req->set_product_id(id);
  std::optional<int64_t> delta, total;
  INVCTL_RETURN_IF_ERROR(Read(a.OptionalInt64("delta"), &delta));
  INVCTL_RETURN_IF_ERROR(Read(a.OptionalInt64("total"), &total));
  if (delta.has_value() == total.has_value()) {
    return absl::InvalidArgumentError("give exactly one of --delta and --total");
  }
  if (delta.has_value()) req->set_delta(*delta);
  if (total.has_value()) req->set_new_total(*total);
  std::optional<std::string> reason;
  INVCTL_RETURN_IF_ERROR(Read(a.OptionalChoice("reason", ReasonWords()), &reason));
  if (!reason.has_value()) {
    return absl::InvalidArgumentError("--reason is required");
  }
  // The words are the enum's names in order: restock = 1, return = 2, ...
  for (size_t i = 0; i < ReasonWords().size(); ++i) {
    if (ReasonWords()[i] == *reason) {
      req->set_reason(static_cast<v1::StockAdjustmentReason>(i + 1));
    }
  }
  req->set_etag(a.Get("etag"));
  req->set_session_id(a.Get("session"));
  req->set_note(a.Get("note"));
  return absl::OkStatus();
}

int RunProductAdjust(Invocation& inv) {
  v1::AdjustStockRequest req;
  if (absl::Status s = BuildAdjust(inv.args(), &req); !s.ok()) {
    return inv.UsageError(s.message());
  }
  v1::Product resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->AdjustStock(ctx.get(), req, &resp);
  return Finish<v1::Product>(inv, s, resp, PrintProduct);
}

absl::Status BuildUpdate(const ParsedArgs& a, v1::UpdateProductRequest* req) {
  int64_t id = 0;
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredInt64("id"), &id));
  v1::Product* p = req->mutable_product();
  p->set_product_id(id);
  bool policy_given = false;
  v1::StockPolicy policy = v1::STOCK_POLICY_UNSPECIFIED;
  INVCTL_RETURN_IF_ERROR(Read(PolicyFlag(a, &policy_given), &policy));
  std::optional<int64_t> threshold;
  INVCTL_RETURN_IF_ERROR(Read(a.OptionalInt64("threshold"), &threshold));
  // The field mask is exactly the flags given (AIP-134).
  if (policy_given) {
    p->set_stock_policy(policy);
    req->mutable_update_mask()->add_paths("stock_policy");
  }
  if (threshold.has_value()) {
    p->set_low_stock_threshold(*threshold);
    req->mutable_update_mask()->add_paths("low_stock_threshold");
  }
  if (!policy_given && !threshold.has_value()) {
    return absl::InvalidArgumentError(
        "nothing to update: give --policy and/or --threshold");
  }
  p->set_etag(a.Get("etag"));
  return absl::OkStatus();
}

int RunProductUpdate(Invocation& inv) {
  v1::UpdateProductRequest req;
  if (absl::Status s = BuildUpdate(inv.args(), &req); !s.ok()) {
    return inv.UsageError(s.message());
  }
  v1::Product resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->UpdateProduct(ctx.get(), req, &resp);
  return Finish<v1::Product>(inv, s, resp, PrintProduct);
}

// ---------------------------------------------------------- reservations

absl::Status BuildReserve(const ParsedArgs& a, v1::ReserveItemRequest* req) {
  std::string request_id, customer;
  int64_t product = 0, quantity = 0;
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredString("request-id"), &request_id));
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredInt64("product"), &product));
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredInt64("quantity"), &quantity));
  INVCTL_RETURN_IF_ERROR(Read(a.RequiredString("customer"), &customer));
  std::optional<absl::Duration> ttl;
  INVCTL_RETURN_IF_ERROR(Read(a.OptionalDuration("ttl"), &ttl));
  req->set_request_id(request_id);
  req->set_product_id(product);
  req->set_quantity(quantity);
  req->set_customer_id(customer);
  if (ttl.has_value()) SetDuration(*ttl, req->mutable_hold_ttl());
  return absl::OkStatus();
}

int RunReserve(Invocation& inv) {
  v1::ReserveItemRequest req;
  if (absl::Status s = BuildReserve(inv.args(), &req); !s.ok()) {
    return inv.UsageError(s.message());
  }
  v1::ReserveItemResponse resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->ReserveItem(ctx.get(), req, &resp);
  return Finish<v1::ReserveItemResponse>(
      inv, s, resp, [](const v1::ReserveItemResponse& r, std::ostream& out) {
        std::vector<std::string> headers = ReservationHeaders();
        headers.push_back("REPLAYED");
        Table t(headers);
        std::vector<std::string> row = ReservationRow(r.reservation());
        row.push_back(r.replayed() ? "yes" : "no");
        t.AddRow(std::move(row));
        t.Print(out);
      });
}

int RunRelease(Invocation& inv) {
  v1::ReleaseItemRequest req;
  req.set_reservation_id(inv.args().positional()[0]);
  v1::ReleaseItemResponse resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->ReleaseItem(ctx.get(), req, &resp);
  return Finish<v1::ReleaseItemResponse>(
      inv, s, resp, [](const v1::ReleaseItemResponse& r, std::ostream& out) {
        PrintReservation(r.reservation(), out);
      });
}

int RunCommit(Invocation& inv) {
  v1::CommitReservationRequest req;
  req.set_reservation_id(inv.args().positional()[0]);
  v1::CommitReservationResponse resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->CommitReservation(ctx.get(), req, &resp);
  return Finish<v1::CommitReservationResponse>(
      inv, s, resp,
      [](const v1::CommitReservationResponse& r, std::ostream& out) {
        PrintReservation(r.reservation(), out);
      });
}

int RunReservationGet(Invocation& inv) {
  v1::GetReservationRequest req;
  req.set_reservation_id(inv.args().positional()[0]);
  v1::Reservation resp;
  auto ctx = inv.NewContext();
  const grpc::Status s = Stub(inv)->GetReservation(ctx.get(), req, &resp);
  return Finish<v1::Reservation>(inv, s, resp, PrintReservation);
}

// ----------------------------------------------------------------- lists

// Reads --page-size and --page-token into a list request.
template <typename Request>
absl::Status ReadPaging(const ParsedArgs& a, Request* req) {
  std::optional<int64_t> size;
  INVCTL_RETURN_IF_ERROR(Read(a.OptionalInt64("page-size"), &size));
  if (size.has_value()) {
    if (*size < 0 || *size > 1000000) {
      return absl::InvalidArgumentError("--page-size must be 0..1000000");
    }
    req->set_page_size(static_cast<int32_t>(*size));
  }
  req->set_page_token(a.Get("page-token"));
  return absl::OkStatus();
}

// Calls `call` for one page, or for every page with --all (the pages merged
// into one response, its next_page_token empty).
template <typename Request, typename Response>
grpc::Status ListPages(
    Invocation& inv, Request req, Response* merged,
    const std::function<grpc::Status(grpc::ClientContext*, const Request&,
                                     Response*)>& call) {
  const bool all = inv.args().Has("all");
  while (true) {
    Response page;
    auto ctx = inv.NewContext();
    grpc::Status s = call(ctx.get(), req, &page);
    if (!s.ok()) return s;
    const std::string next = page.next_page_token();
    merged->MergeFrom(page);
    merged->set_next_page_token(next);
    // A token that does not move would loop forever: stop there.
    if (!all || next.empty() || next == req.page_token()) return s;
    req.set_page_token(next);
  }
}

void NoteMorePages(Invocation& inv, const std::string& token) {
  if (!token.empty() && !inv.json()) {
    inv.err() << "(more results: add --page-token " << token
              << ", or --all for every page)\n";
  }
}

int RunReservationsList(Invocation& inv) {
  v1::ListReservationsRequest req;
  absl::Status built = [&]() -> absl::Status {
    std::optional<int64_t> product;
    INVCTL_RETURN_IF_ERROR(Read(inv.args().OptionalInt64("product"), &product));
    req.set_product_id(product.value_or(0));
    std::optional<std::string> status;
    INVCTL_RETURN_IF_ERROR(Read(
        inv.args().OptionalChoice(
            "status", {"pending", "purchased", "released", "expired"}),
        &status));
    if (status.has_value()) {
      v1::ReservationStatus value = v1::RESERVATION_STATUS_UNSPECIFIED;
      v1::ReservationStatus_Parse(
          "RESERVATION_STATUS_" + absl::AsciiStrToUpper(*status), &value);
      req.set_status(value);
    }
    return ReadPaging(inv.args(), &req);
  }();
  if (!built.ok()) return inv.UsageError(built.message());
  auto stub = Stub(inv);
  v1::ListReservationsResponse resp;
  const grpc::Status s =
      ListPages<v1::ListReservationsRequest, v1::ListReservationsResponse>(
          inv, req, &resp,
          [&stub](grpc::ClientContext* ctx,
                  const v1::ListReservationsRequest& r,
                  v1::ListReservationsResponse* out) {
            return stub->ListReservations(ctx, r, out);
          });
  if (!s.ok()) return inv.RpcFailed(s);
  if (inv.json()) {
    PrintJson(resp, inv.out());
    return kExitOk;
  }
  Table t(ReservationHeaders());
  for (const v1::Reservation& r : resp.reservations()) t.AddRow(ReservationRow(r));
  t.Print(inv.out());
  NoteMorePages(inv, resp.next_page_token());
  return kExitOk;
}

int RunAdjustmentsList(Invocation& inv) {
  v1::ListStockAdjustmentsRequest req;
  absl::Status built = [&]() -> absl::Status {
    std::optional<int64_t> product;
    INVCTL_RETURN_IF_ERROR(Read(inv.args().OptionalInt64("product"), &product));
    req.set_product_id(product.value_or(0));
    return ReadPaging(inv.args(), &req);
  }();
  if (!built.ok()) return inv.UsageError(built.message());
  auto stub = Stub(inv);
  v1::ListStockAdjustmentsResponse resp;
  const grpc::Status s = ListPages<v1::ListStockAdjustmentsRequest,
                                   v1::ListStockAdjustmentsResponse>(
      inv, req, &resp,
      [&stub](grpc::ClientContext* ctx, const v1::ListStockAdjustmentsRequest& r,
              v1::ListStockAdjustmentsResponse* out) {
        return stub->ListStockAdjustments(ctx, r, out);
      });
  if (!s.ok()) return inv.RpcFailed(s);
  if (inv.json()) {
    PrintJson(resp, inv.out());
    return kExitOk;
  }
  Table t({"ADJUSTMENT", "PRODUCT", "REASON", "BEFORE", "AFTER", "CHANGE",
           "ACTOR", "SESSION", "TIME", "NOTE"});
  for (const v1::StockAdjustment& a : resp.stock_adjustments()) {
    const int64_t change = a.total_after() - a.total_before();
    t.AddRow({a.adjustment_id(), absl::StrCat(a.product_id()),
              ShortEnumName(v1::StockAdjustmentReason_descriptor(), a.reason()),
              absl::StrCat(a.total_before()), absl::StrCat(a.total_after()),
              absl::StrCat(change > 0 ? "+" : "", change),
              a.actor().empty() ? "-" : a.actor(),
              a.session_id().empty() ? "-" : a.session_id(),
              FormatTime(a.create_time()), a.note().empty() ? "-" : a.note()});
  }
  t.Print(inv.out());
  NoteMorePages(inv, resp.next_page_token());
  return kExitOk;
}

// ---------------------------------------------------------------- events

constexpr char kEventRowFormat[] = "%-20s  %-10s  %-12s  %9s  %9s  %s\n";

void PrintEventRow(const v1::WatchInventoryEventsResponse& m, std::ostream& out) {
  const v1::InventoryEvent& e = m.event();
  out << absl::StrFormat(
      kEventRowFormat, FormatTime(e.create_time()), absl::StrCat(e.product_id()),
      ShortEnumName(v1::InventoryEventType_descriptor(), e.type()),
      absl::StrCat(e.available_quantity()), absl::StrCat(e.low_stock_threshold()),
      CellText(m.cursor()));
}

int RunEventsWatch(Invocation& inv) {
  v1::WatchInventoryEventsRequest req;
  req.set_cursor(inv.args().Get("cursor"));
  std::optional<int64_t> count;
  if (absl::Status s = Read(inv.args().OptionalInt64("count"), &count); !s.ok()) {
    return inv.UsageError(s.message());
  }
  if (count.has_value() && *count <= 0) {
    return inv.UsageError("--count must be > 0");
  }
  auto stub = Stub(inv);
  auto ctx = inv.NewContext();
  CancelOnInterrupt interrupt(ctx.get());
  std::unique_ptr<grpc::ClientReader<v1::WatchInventoryEventsResponse>> reader =
      stub->WatchInventoryEvents(ctx.get(), req);
  if (!inv.json()) {
    inv.out() << absl::StrFormat(kEventRowFormat, "TIME", "PRODUCT", "EVENT",
                                 "AVAILABLE", "THRESHOLD", "CURSOR");
    inv.out().flush();
  }
  int64_t seen = 0;
  v1::WatchInventoryEventsResponse msg;
  while (reader->Read(&msg)) {
    if (inv.json()) {
      PrintJson(msg, inv.out(), /*pretty=*/false);
    } else {
      PrintEventRow(msg, inv.out());
    }
    inv.out().flush();
    if (count.has_value() && ++seen >= *count) {
      ctx->TryCancel();
      break;
    }
  }
  const grpc::Status s = reader->Finish();
  if (count.has_value() && seen >= *count) return kExitOk;
  if (interrupt.interrupted() || s.ok()) return kExitOk;
  // Without --count, a deadline (--timeout) is the end of the watch window.
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && !count.has_value()) {
    return kExitOk;
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    inv.err() << "received " << seen << " of " << *count << " events\n";
  }
  return inv.RpcFailed(s);
}

}  // namespace

std::vector<Command> InventoryCommands() {
  const FlagSpec id{"id", "N", "product id (required)"};
  const FlagSpec policy{"policy", "strict|backorder", "stock policy"};
  const FlagSpec threshold{"threshold", "N", "low-stock threshold"};
  const FlagSpec etag{"etag", "E",
                      "apply only if the product's etag is still E (else "
                      "ABORTED ETAG_MISMATCH)"};
  const FlagSpec page_size{"page-size", "N", "results per page (server default 50)"};
  const FlagSpec page_token{"page-token", "T", "continue from a previous page"};
  const FlagSpec all{"all", "", "follow next_page_token to the last page"};
  const FlagSpec product_filter{"product", "N", "only this product"};

  std::vector<Command> c;
  auto add = [&c](std::vector<std::string> path, std::string synopsis,
                  std::string summary, std::vector<FlagSpec> flags,
                  std::vector<std::string> positional, int (*run)(Invocation&)) {
    Command cmd;
    cmd.path = std::move(path);
    cmd.synopsis = std::move(synopsis);
    cmd.summary = std::move(summary);
    cmd.flags = std::move(flags);
    cmd.positional = std::move(positional);
    cmd.run = run;
    c.push_back(std::move(cmd));
  };
  add({"product", "create"},
      "--id N --total N [--policy strict|backorder] [--threshold N]",
      "create a product with its stock",
      {id, {"total", "N", "units for sale (required)"}, policy, threshold}, {},
      RunProductCreate);
  add({"product", "get"}, "--id N", "show a product's counters", {id}, {},
      RunProductGet);
  add({"product", "adjust"},
      "--id N (--delta N | --total N) --reason "
      "restock|return|damage|correction|shrinkage|other [--etag E] "
      "[--session S] [--note T]",
      "change a product's total stock (kept in the audit trail)",
      {id,
       {"delta", "N", "units to add (> 0) or remove (< 0)"},
       {"total", "N", "the new total"},
       {"reason", "WORD",
        "restock, return, damage, correction, shrinkage or other (required)"},
       etag,
       {"session", "S", "operator session (skips the etag check within the "
                        "server's session window)"},
       {"note", "T", "free text for the audit trail"}},
      {}, RunProductAdjust);
  add({"product", "update"},
      "--id N [--policy strict|backorder] [--threshold N] [--etag E]",
      "change a product's policy and/or threshold (mask = the flags given)",
      {id, policy, threshold, etag}, {}, RunProductUpdate);
  add({"reserve"},
      "--request-id R --product N --quantity Q --customer C [--ttl 30s]",
      "hold units of a product for a customer (ReserveItem)",
      {{"request-id", "R", "idempotency key: a retry with it never reserves "
                           "twice (required)"},
       {"product", "N", "product id (required)"},
       {"quantity", "Q", "units (required)"},
       {"customer", "C", "customer id (required)"},
       {"ttl", "DURATION", "hold time (server default 15m)"}},
      {}, RunReserve);
  add({"release"}, "ID", "give a PENDING reservation's units back", {}, {"ID"},
      RunRelease);
  add({"commit"}, "ID", "sell a PENDING reservation's units", {}, {"ID"},
      RunCommit);
  add({"reservation", "get"}, "ID", "show one reservation", {}, {"ID"},
      RunReservationGet);
  add({"reservations", "list"},
      "[--product N] [--status pending|purchased|released|expired] "
      "[--page-size N] [--page-token T] [--all]",
      "list reservations across every shard",
      {product_filter,
       {"status", "WORD", "only pending, purchased, released or expired"},
       page_size, page_token, all},
      {}, RunReservationsList);
  add({"adjustments", "list"},
      "[--product N] [--page-size N] [--page-token T] [--all]",
      "list the stock adjustment audit trail",
      {product_filter, page_size, page_token, all}, {}, RunAdjustmentsList);
  add({"events", "watch"}, "[--cursor C] [--count N]",
      "stream low-stock / out-of-stock / restocked events as they happen",
      {{"cursor", "C", "resume after the event that carried this cursor "
                       "(default: the oldest kept)"},
       {"count", "N", "stop after N events"}},
      {}, RunEventsWatch);
  Command& watch = c.back();
  watch.default_timeout = absl::InfiniteDuration();
  watch.details =
      "Prints each event as it arrives (--output json: one object per line) "
      "until\n--count events, Ctrl-C, or --timeout (no deadline by default); "
      "each ends\nwith exit 0, except a deadline reached before --count "
      "events (68).";
  return c;
}

}  // namespace invctl
