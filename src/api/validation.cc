#include "inventory/api/validation.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "inventory/common/errors.h"

namespace inventory {
namespace {

constexpr size_t kMaxRequestIdLength = 128;
constexpr size_t kMaxCustomerIdBytes = 128;

bool IsRequestIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
         c == '-';
}

void CheckRequestId(const std::string& id, std::vector<FieldViolation>* out) {
  if (id.empty()) {
    out->push_back({"request_id", "is required (an idempotency key)"});
    return;
  }
  if (id.size() > kMaxRequestIdLength) {
    out->push_back({"request_id", absl::StrCat("must be at most ",
                                               kMaxRequestIdLength,
                                               " characters, got ", id.size())});
    return;
  }
  for (char c : id) {
    if (!IsRequestIdChar(c)) {
      out->push_back(
          {"request_id", "may contain only A-Z a-z 0-9 . _ : -"});
      return;
    }
  }
}

void CheckCustomerId(const std::string& id, std::vector<FieldViolation>* out) {
  if (id.empty()) {
    out->push_back({"customer_id", "is required"});
    return;
  }
  if (id.size() > kMaxCustomerIdBytes) {
    out->push_back({"customer_id",
                    absl::StrCat("must be at most ", kMaxCustomerIdBytes,
                                 " bytes, got ", id.size())});
    return;
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f) {
      out->push_back({"customer_id", "must not contain control characters"});
      return;
    }
  }
}

void CheckProductId(int64_t id, std::vector<FieldViolation>* out,
                    const char* field = "product_id") {
  if (id <= 0) {
    out->push_back(
        {field, absl::StrCat("must be a positive integer, got ", id)});
  }
}

}  // namespace

absl::StatusOr<ReserveCommand> ValidateReserve(
    const inventory::v1::ReserveItemRequest& request,
    const RequestLimits& limits) {
  std::vector<FieldViolation> bad;
  CheckRequestId(request.request_id(), &bad);
  CheckProductId(request.product_id(), &bad);
  if (request.quantity() < 1 || request.quantity() > limits.max_quantity) {
    bad.push_back({"quantity", absl::StrCat("must be between 1 and ",
                                            limits.max_quantity, ", got ",
                                            request.quantity())});
  }
  CheckCustomerId(request.customer_id(), &bad);
  absl::Duration requested;
  if (request.has_hold_ttl()) {
    const std::optional<absl::Duration> d = ToDuration(request.hold_ttl());
    if (d.has_value()) requested = *d;
    if (!d.has_value() || requested < limits.min_hold_ttl ||
        requested > limits.max_hold_ttl) {
      bad.push_back({"hold_ttl",
                     absl::StrCat("must be between ",
                                  absl::FormatDuration(limits.min_hold_ttl),
                                  " and ",
                                  absl::FormatDuration(limits.max_hold_ttl))});
    }
  }
  if (!bad.empty()) return InvalidArgumentError(std::move(bad));
  ReserveCommand c;
  c.request_id = request.request_id();
  c.product_id = request.product_id();
  c.quantity = request.quantity();
  c.customer_id = request.customer_id();
  // Millisecond precision: what the store keeps.
  c.requested_ttl = absl::Milliseconds(absl::ToInt64Milliseconds(requested));
  c.hold_ttl = request.has_hold_ttl() ? c.requested_ttl : limits.default_hold_ttl;
  return c;
}

absl::StatusOr<ReservationKey> ValidateReservationId(absl::string_view id) {
  return ParseReservationId(id);
}

absl::StatusOr<NewProduct> ValidateCreateProduct(
    const inventory::v1::CreateProductRequest& request,
    const RequestLimits& limits) {
  std::vector<FieldViolation> bad;
  CheckProductId(request.product_id(), &bad);
  if (request.total_quantity() < 0 ||
      request.total_quantity() > limits.max_total_quantity) {
    bad.push_back({"total_quantity",
                   absl::StrCat("must be between 0 and ",
                                limits.max_total_quantity, ", got ",
                                request.total_quantity())});
  }
  if (request.low_stock_threshold() < 0 ||
      request.low_stock_threshold() > limits.max_total_quantity) {
    bad.push_back({"low_stock_threshold",
                   absl::StrCat("must be between 0 and ",
                                limits.max_total_quantity, ", got ",
                                request.low_stock_threshold())});
  }
  StockPolicy policy = StockPolicy::kStrict;
  switch (request.stock_policy()) {
    case inventory::v1::STOCK_POLICY_UNSPECIFIED:
    case inventory::v1::STOCK_POLICY_STRICT:
      break;
    case inventory::v1::STOCK_POLICY_BACKORDER:
      policy = StockPolicy::kBackorder;
      break;
    default:
      bad.push_back({"stock_policy",
                     absl::StrCat("unknown value ", request.stock_policy(),
                                  "; use STOCK_POLICY_STRICT or "
                                  "STOCK_POLICY_BACKORDER")});
  }
  if (!bad.empty()) return InvalidArgumentError(std::move(bad));
  NewProduct p;
  p.product_id = request.product_id();
  p.total_quantity = request.total_quantity();
  p.stock_policy = policy;
  p.low_stock_threshold = request.low_stock_threshold();
  return p;
}

absl::Status ValidateProductId(int64_t product_id) {
  std::vector<FieldViolation> bad;
  CheckProductId(product_id, &bad);
  if (!bad.empty()) return InvalidArgumentError(std::move(bad));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ValidateAvailability(
    const inventory::v1::GetAvailabilityRequest& request,
    const RequestLimits& limits) {
  const int n = request.product_ids_size();
  if (n == 0) {
    return InvalidArgumentError({{"product_ids", "give at least one id"}});
  }
  if (static_cast<size_t>(n) > limits.max_availability_ids) {
    return InvalidArgumentError(
        {{"product_ids", absl::StrCat("at most ", limits.max_availability_ids,
                                      " ids per call, got ", n)}});
  }
  std::vector<FieldViolation> bad;
  std::vector<int64_t> ids;
  absl::flat_hash_set<int64_t> seen;
  for (int i = 0; i < n; ++i) {
    int64_t id = request.product_ids(i);
    if (id <= 0) {
      bad.push_back({absl::StrCat("product_ids[", i, "]"),
                     absl::StrCat("must be a positive integer, got ", id)});
    } else if (seen.insert(id).second) {
      ids.push_back(id);
    }
  }
  if (!bad.empty()) return InvalidArgumentError(std::move(bad));
  return ids;
}

absl::StatusOr<AdjustStockCommand> ValidateAdjustStock(
    const inventory::v1::AdjustStockRequest& request, std::string actor,
    absl::Duration session_window, const RequestLimits& limits) {
  std::vector<FieldViolation> bad;
  CheckProductId(request.product_id(), &bad);
  AdjustStockCommand c;
  switch (request.change_case()) {
    case inventory::v1::AdjustStockRequest::kDelta:
      if (request.delta() == 0 || request.delta() > limits.max_total_quantity ||
          request.delta() < -limits.max_total_quantity) {
        bad.push_back({"delta", absl::StrCat("must be non-zero and at most ",
                                             limits.max_total_quantity,
                                             " in size")});
      }
      c.delta = request.delta();
      break;
    case inventory::v1::AdjustStockRequest::kNewTotal:
      if (request.new_total() < 0 ||
          request.new_total() > limits.max_total_quantity) {
        bad.push_back({"new_total", absl::StrCat("must be between 0 and ",
                                                 limits.max_total_quantity)});
      }
      c.new_total = request.new_total();
      break;
    default:
      bad.push_back({"change", "set exactly one of delta or new_total"});
  }
  if (request.reason() < inventory::v1::STOCK_ADJUSTMENT_REASON_RESTOCK ||
      request.reason() > inventory::v1::STOCK_ADJUSTMENT_REASON_OTHER) {
    bad.push_back({"reason", "is required: RESTOCK, RETURN, DAMAGE, "
                             "CORRECTION, SHRINKAGE or OTHER"});
  }
  if (request.etag().size() > 64) {
    bad.push_back({"etag", "is not an etag this service issued"});
  }
  // PostgreSQL text cannot hold a NUL byte (it would be cut there).
  if (request.session_id().size() > 128) {
    bad.push_back({"session_id", "must be at most 128 bytes"});
  } else if (absl::StrContains(request.session_id(), '\0')) {
    bad.push_back({"session_id", "must not contain a NUL byte"});
  }
  if (request.note().size() > 512) {
    bad.push_back({"note", "must be at most 512 bytes"});
  } else if (absl::StrContains(request.note(), '\0')) {
    bad.push_back({"note", "must not contain a NUL byte"});
  }
  if (!bad.empty()) return InvalidArgumentError(std::move(bad));
  c.product_id = request.product_id();
  c.reason = request.reason();
  c.etag = request.etag();
  c.session_id = request.session_id();
  c.actor = std::move(actor);
  c.note = request.note();
  c.session_window = session_window;
  c.max_total = limits.max_total_quantity;
  return c;
}

absl::StatusOr<ProductUpdate> ValidateUpdateProduct(
    const inventory::v1::UpdateProductRequest& request,
    const RequestLimits& limits) {
  std::vector<FieldViolation> bad;
  const auto& p = request.product();
  CheckProductId(p.product_id(), &bad, "product.product_id");
  ProductUpdate u;
  if (request.update_mask().paths_size() == 0) {
    bad.push_back({"update_mask",
                   "name the fields to change: stock_policy, "
                   "low_stock_threshold"});
  }
  for (const std::string& path : request.update_mask().paths()) {
    if (path == "stock_policy") {
      if (p.stock_policy() == inventory::v1::STOCK_POLICY_STRICT) {
        u.stock_policy = StockPolicy::kStrict;
      } else if (p.stock_policy() == inventory::v1::STOCK_POLICY_BACKORDER) {
        u.stock_policy = StockPolicy::kBackorder;
      } else {
        bad.push_back({"product.stock_policy",
                       "must be STOCK_POLICY_STRICT or STOCK_POLICY_BACKORDER"});
      }
    } else if (path == "low_stock_threshold") {
      if (p.low_stock_threshold() < 0 ||
          p.low_stock_threshold() > limits.max_total_quantity) {
        bad.push_back({"product.low_stock_threshold",
                       absl::StrCat("must be between 0 and ",
                                    limits.max_total_quantity)});
      }
      u.low_stock_threshold = p.low_stock_threshold();
    } else {
      bad.push_back({"update_mask",
                     absl::StrCat("'", path.substr(0, 64),
                                  "' cannot be updated here (only "
                                  "stock_policy and low_stock_threshold; "
                                  "quantities change with AdjustStock)")});
    }
  }
  if (!bad.empty()) return InvalidArgumentError(std::move(bad));
  u.product_id = p.product_id();
  u.etag = p.etag();
  return u;
}

std::optional<absl::Duration> ToDuration(const google::protobuf::Duration& d) {
  const bool well_formed = d.nanos() > -1000000000 && d.nanos() < 1000000000 &&
                           !(d.seconds() > 0 && d.nanos() < 0) &&
                           !(d.seconds() < 0 && d.nanos() > 0);
  if (!well_formed) return std::nullopt;
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::StatusOr<int> ValidatePageSize(int32_t page_size) {
  if (page_size == 0) return 50;
  if (page_size < 0 || page_size > 1000) {
    return InvalidArgumentError(
        {{"page_size", absl::StrCat("must be between 0 and 1000, got ",
                                    page_size)}});
  }
  return page_size;
}

}  // namespace inventory
