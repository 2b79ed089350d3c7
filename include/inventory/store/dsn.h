// A libpq connection string that cannot be logged by accident: the only way to
// print it is Redacted(), which hides the password.
#ifndef INVENTORY_STORE_DSN_H_
#define INVENTORY_STORE_DSN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace inventory {

// A shard's connection string (keyword=value or postgres:// URI form).
class Dsn {
 public:
  explicit Dsn(std::string conninfo) : conninfo_(std::move(conninfo)) {}

  // The full string, for libpq only. Never log it.
  const std::string& ForConnect() const { return conninfo_; }

  // The string with any password replaced by "***": safe for logs and errors.
  std::string Redacted() const;

  // "host:port/dbname" (or what of it is known): a short name for humans.
  std::string Endpoint() const;

 private:
  std::string conninfo_;
};

// Splits a comma-separated list of DSNs (the --shards flag). A comma
// separates only where a new string starts (a "keyword=" entry or a URI), so
// libpq's multi-host lists ("host=a,b port=5432,5433", "postgresql://a,b/db")
// and quoted values stay whole. Empty entries are an error.
absl::StatusOr<std::vector<Dsn>> ParseDsnList(absl::string_view list);

}  // namespace inventory

#endif  // INVENTORY_STORE_DSN_H_
