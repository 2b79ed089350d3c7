#include "sql.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"

namespace inventory::testing {

int64_t QueryInt(const std::string& dsn, const std::string& sql) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  pqxx::result r = tx.exec(sql);
  if (r.empty() || r[0][0].is_null()) return 0;
  return r[0][0].as<int64_t>();
}

void Exec(const std::string& dsn, const std::string& sql) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

int64_t CounterDrift(const std::string& dsn) {
  return QueryInt(dsn, R"sql(
    SELECT count(*) FROM products p
    LEFT JOIN (
      SELECT product_id,
             sum(quantity) FILTER (WHERE status = 1) AS pending,
             sum(quantity) FILTER (WHERE status = 2) AS purchased
      FROM reservations GROUP BY product_id) r USING (product_id)
    WHERE p.reserved_quantity <> coalesce(r.pending, 0)
       OR p.purchased_quantity <> coalesce(r.purchased, 0))sql");
}

HeldLock::HeldLock(const std::string& dsn, const std::string& sql)
    : conn_(std::make_unique<pqxx::connection>(dsn)),
      tx_(std::make_unique<pqxx::work>(*conn_)) {
  tx_->exec(sql);
}

void HeldLock::Release() {
  if (tx_ == nullptr) return;
  tx_->abort();
  tx_.reset();
}

std::string ProductRowLock(int64_t product_id) {
  return absl::StrCat("SELECT 1 FROM products WHERE product_id = ", product_id,
                      " FOR UPDATE");
}

std::string ReservationRowLock(const std::string& request_id) {
  // Test request ids are letters, digits and dashes: no quoting needed.
  return absl::StrCat("SELECT 1 FROM reservations WHERE request_id = '",
                      request_id, "' FOR UPDATE");
}

}  // namespace inventory::testing
