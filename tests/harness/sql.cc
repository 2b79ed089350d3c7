#include "sql.h"

#include <pqxx/pqxx>

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

}  // namespace inventory::testing
