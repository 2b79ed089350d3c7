// Errors as values: absl::Status carrying the API's machine-readable reason.
// Every layer returns these; only the API edge turns them into gRPC statuses.
#ifndef INVENTORY_COMMON_ERRORS_H_
#define INVENTORY_COMMON_ERRORS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace inventory {

// The google.rpc.ErrorInfo domain of every error this service returns.
inline constexpr char kErrorDomain[] = "inventory.v1";

// ErrorInfo reasons (the `reason` column of the brief's error table).
namespace reason {
inline constexpr char kOutOfStock[] = "OUT_OF_STOCK";
inline constexpr char kProductNotFound[] = "PRODUCT_NOT_FOUND";
inline constexpr char kReservationNotFound[] = "RESERVATION_NOT_FOUND";
inline constexpr char kReservationNotPending[] = "RESERVATION_NOT_PENDING";
inline constexpr char kRequestIdConflict[] = "REQUEST_ID_CONFLICT";
inline constexpr char kEtagMismatch[] = "ETAG_MISMATCH";
inline constexpr char kProductExists[] = "PRODUCT_EXISTS";
inline constexpr char kStockBelowCommitted[] = "STOCK_BELOW_COMMITTED";
inline constexpr char kStockAboveLimit[] = "STOCK_ABOVE_LIMIT";
inline constexpr char kConcurrentUpdate[] = "CONCURRENT_UPDATE";
inline constexpr char kShardIdentityMismatch[] = "SHARD_IDENTITY_MISMATCH";
inline constexpr char kServiceStopping[] = "SERVICE_STOPPING";
inline constexpr char kCancelled[] = "CANCELLED";
inline constexpr char kInvalidArgument[] = "INVALID_ARGUMENT";
inline constexpr char kShardUnavailable[] = "SHARD_UNAVAILABLE";
inline constexpr char kDeadlineExceeded[] = "DEADLINE_EXCEEDED";
inline constexpr char kInternal[] = "INTERNAL";
inline constexpr char kUnimplemented[] = "UNIMPLEMENTED";
}  // namespace reason

// Status payload type URLs (the same as google.rpc details in an Any).
inline constexpr char kErrorInfoTypeUrl[] =
    "type.googleapis.com/google.rpc.ErrorInfo";
inline constexpr char kBadRequestTypeUrl[] =
    "type.googleapis.com/google.rpc.BadRequest";

// One ErrorInfo metadata entry; keys are lowerCamel (e.g. "productId").
using ErrorMetadata = std::vector<std::pair<std::string, std::string>>;

// One bad field of a request: its path and what is wrong with it.
struct FieldViolation {
  std::string field;
  std::string description;
};

// A status with `code`, a message safe to show a client, and an ErrorInfo
// payload with `reason` and `metadata`.
absl::Status MakeError(absl::StatusCode code, absl::string_view reason,
                       absl::string_view message, ErrorMetadata metadata = {});

// INVALID_ARGUMENT naming every bad field (ErrorInfo + BadRequest payloads).
absl::Status InvalidArgumentError(std::vector<FieldViolation> violations);

// UNAVAILABLE / SHARD_UNAVAILABLE for shard `shard`; the caller may retry.
absl::Status ShardUnavailableError(int shard, absl::string_view why);

// The ErrorInfo reason carried by `status`, or "" if it has none.
std::string ErrorReason(const absl::Status& status);

// The ErrorInfo metadata carried by `status` (empty if none).
ErrorMetadata ErrorMetadataOf(const absl::Status& status);

// Metadata key of a CONCURRENT_UPDATE whose statement waited out its
// lock_timeout for a row another transaction held ("true").
inline constexpr char kLockTimeoutKey[] = "lockTimeout";

// Whether `status` is a CONCURRENT_UPDATE that waited out a row lock.
bool WaitedOutALock(const absl::Status& status);

}  // namespace inventory

#endif  // INVENTORY_COMMON_ERRORS_H_
