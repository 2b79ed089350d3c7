// Logging set-up: spdlog to stderr as text or as one JSON object per line
// (--log_format), and the one-line-per-RPC access log. Every string that goes
// into a JSON line is escaped, so odd client input cannot break a line.
#ifndef INVENTORY_OBSERVABILITY_LOGGING_H_
#define INVENTORY_OBSERVABILITY_LOGGING_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace inventory {

// Sets the default logger's format ("text" or "json") and level ("trace" ..
// "critical", "off"). INVALID_ARGUMENT for anything else.
absl::Status ConfigureLogging(absl::string_view format,
                              absl::string_view level);

// Writes out the access-log lines still held in memory, and every later line
// at once (before the process exits).
void FlushLogs();

// The contents of a JSON string literal for any bytes: quotes, backslashes
// and control characters escaped; invalid UTF-8 replaced by U+FFFD.
std::string JsonEscape(absl::string_view text);

// One access-log line.
struct RpcLogRecord {
  std::string method;      // "/inventory.v1.InventoryService/ReserveItem"
  grpc::StatusCode code = grpc::StatusCode::OK;
  double duration_ms = 0;
  std::string request_id;  // "" if the request has none
  int shard = -1;          // -1 if not a single shard
  std::string peer;
  std::string error;       // the status message, if not OK
};

// Writes `record` at info level (json or text, as configured).
void LogRpc(const RpcLogRecord& record);

}  // namespace inventory

#endif  // INVENTORY_OBSERVABILITY_LOGGING_H_
