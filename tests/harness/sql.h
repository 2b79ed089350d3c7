// Test harness: direct SQL on a shard, to check what the service wrote (never
// to stand in for the service).
#ifndef INVENTORY_TESTS_HARNESS_SQL_H_
#define INVENTORY_TESTS_HARNESS_SQL_H_

#include <cstdint>
#include <string>

namespace inventory::testing {

// Runs `sql` on `dsn` and returns the first column of the first row as an
// integer (0 if there is no row or it is NULL). Throws on SQL errors.
int64_t QueryInt(const std::string& dsn, const std::string& sql);

// Runs `sql` (no result) on `dsn`. Throws on SQL errors.
void Exec(const std::string& dsn, const std::string& sql);

// Invariant 2 on one shard: the number of products whose counters differ
// from the sums of their PENDING / PURCHASED reservation rows.
int64_t CounterDrift(const std::string& dsn);

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_SQL_H_
