#include "sql.h"

#include <pqxx/pqxx>
#include <stdexcept>

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

HeldLock::HeldLock(const std::string& dsn)
    : conn_(std::make_unique<pqxx::connection>(dsn)),
      tx_(std::make_unique<pqxx::work>(*conn_)) {}

HeldLock::HeldLock(const std::string& dsn, const std::string& sql,
                   const std::string& param)
    : HeldLock(dsn) {
  if (tx_->exec_params(sql, param).empty()) {
    throw std::runtime_error("HeldLock: no row for " + param);
  }
}

void HeldLock::Release() {
  if (tx_ == nullptr) return;
  tx_->abort();
  tx_.reset();
}

HeldLock HeldLock::ProductRow(const std::string& dsn, int64_t product_id) {
  return HeldLock(dsn,
                  "SELECT 1 FROM products WHERE product_id = $1::bigint "
                  "FOR UPDATE",
                  absl::StrCat(product_id));
}

HeldLock HeldLock::ReservationRow(const std::string& dsn,
                                  const std::string& request_id) {
  return HeldLock(dsn,
                  "SELECT 1 FROM reservations WHERE request_id = $1 FOR UPDATE",
                  request_id);
}

HeldLock HeldLock::Table(const std::string& dsn, const std::string& table) {
  HeldLock held(dsn);
  held.tx_->exec("LOCK TABLE " + held.tx_->quote_name(table) +
                 " IN EXCLUSIVE MODE");
  return held;
}

}  // namespace inventory::testing
