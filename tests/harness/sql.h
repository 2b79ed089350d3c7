// Test harness: direct SQL on a shard, to check what the service wrote (never
// to stand in for the service).
#ifndef INVENTORY_TESTS_HARNESS_SQL_H_
#define INVENTORY_TESTS_HARNESS_SQL_H_

#include <cstdint>
#include <memory>
#include <string>

#include <pqxx/pqxx>

namespace inventory::testing {

// Runs `sql` on `dsn` and returns the first column of the first row as an
// integer (0 if there is no row or it is NULL). Throws on SQL errors.
int64_t QueryInt(const std::string& dsn, const std::string& sql);

// Runs `sql` (no result) on `dsn`. Throws on SQL errors.
void Exec(const std::string& dsn, const std::string& sql);

// Invariant 2 on one shard: the number of products whose counters differ
// from the sums of their PENDING / PURCHASED reservation rows.
int64_t CounterDrift(const std::string& dsn);

// A lock another client holds, in a transaction of its own connection kept
// open until Release() or the end: rows (`sql`, a SELECT ... FOR UPDATE with
// one parameter, `param`; throws if it locked no row) or a whole table.
class HeldLock {
 public:
  HeldLock(const std::string& dsn, const std::string& sql,
           const std::string& param);
  void Release();

  // The products row of `product_id`.
  static HeldLock ProductRow(const std::string& dsn, int64_t product_id);
  // The reservation row made by `request_id`.
  static HeldLock ReservationRow(const std::string& dsn,
                                 const std::string& request_id);
  // `table` in EXCLUSIVE mode: it can be read, not written or locked.
  static HeldLock Table(const std::string& dsn, const std::string& table);

 private:
  explicit HeldLock(const std::string& dsn);

  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::work> tx_;
};

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_SQL_H_
