#include "inventory/store/shard_store.h"

#include <poll.h>

#include <algorithm>
#include <map>
#include <pqxx/pqxx>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "inventory/common/errors.h"
#include "inventory/routing/router.h"
#include "inventory/store/migrations.h"
#include "spdlog/spdlog.h"

namespace inventory {
namespace {

// Key of the advisory lock that serialises migrations and identity checks of
// every inventoryd starting against one shard.
constexpr int64_t kBootstrapLockKey = 0x1a7e4e0001;

// Columns of a reservation as every statement returns them.
#define RES_COLS                                                       \
  "id, product_id, quantity, status, customer_id, request_id, "        \
  "requested_ttl_ms, inv_us(create_time) AS create_us, "               \
  "inv_us(expire_time) AS expire_us, inv_us(update_time) AS update_us, " \
  "backordered_quantity"

// Columns of a stock adjustment as the listings return them.
#define ADJ_COLS                                                        \
  "id, product_id, reason, total_before, total_after, actor, session_id, " \
  "note, inv_us(create_time)"

#define PRODUCT_COLS                                                    \
  "product_id, total_quantity, reserved_quantity, purchased_quantity, " \
  "stock_policy, low_stock_threshold, version, inv_us(create_time), "   \
  "inv_us(update_time), backordered_quantity"

// Every statement the service runs, prepared once per connection.
struct Statement {
  const char* name;
  const char* sql;
};
const Statement kStatements[] = {
    {"product_insert",
     "INSERT INTO products (product_id, total_quantity, stock_policy, "
     "low_stock_threshold) VALUES ($1, $2, $3, $4) "
     "ON CONFLICT (product_id) DO NOTHING RETURNING " PRODUCT_COLS},
    {"product_get", "SELECT " PRODUCT_COLS " FROM products WHERE product_id = $1"},
    {"availability",
     "SELECT product_id, "
     "greatest(total_quantity - reserved_quantity - purchased_quantity, 0) "
     "FROM products WHERE product_id = ANY($1::bigint[])"},
    // The group transaction (migration 0004): every reserve, release and
    // commit goes through it, alone or with company.
    {"apply_batch",
     "SELECT * FROM inv_apply_batch($1::smallint[], $2::bigint[],"
     " $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[],"
     " $8::bigint[])"},
    // The fast path of a batch of reserves (ShardStore::GrantWholeProducts):
    // one statement, no PL/pgSQL. Locks the batch's products in ascending
    // id (the schema's lock order; the InitPlan takes every lock before the
    // first update), then grants each product's requests together if its
    // stock covers them all and none of the request ids was seen before.
    // Products it does not grant are left untouched for inv_apply_batch.
    {"grant_whole",
     "WITH req AS ("
     "  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[],"
     "    $4::text[], $5::bigint[], $6::bigint[])"
     "    AS t(product_id, quantity, customer_id, request_id,"
     "         requested_ttl_ms, hold_ms)"
     "), locked AS MATERIALIZED ("
     "  SELECT product_id FROM products WHERE product_id = ANY($1::bigint[])"
     "  ORDER BY product_id FOR NO KEY UPDATE"
     "), want AS ("
     "  SELECT r.product_id, sum(r.quantity)::bigint AS total"
     "  FROM req r JOIN locked l USING (product_id) GROUP BY r.product_id"
     "), take AS ("
     "  UPDATE products p SET reserved_quantity = p.reserved_quantity + w.total,"
     "    version = p.version + 1, update_time = now()"
     "  FROM want w"
     "  WHERE p.product_id = w.product_id"
     "    AND (SELECT count(*) FROM locked) > 0"
     "    AND NOT EXISTS (SELECT 1 FROM reservations x"
     "                    WHERE x.request_id = ANY($4::text[]))"
     "    AND p.total_quantity - p.reserved_quantity - p.purchased_quantity"
     "        >= w.total"
     "  RETURNING p.product_id"
     ") INSERT INTO reservations (product_id, quantity, status, customer_id,"
     "    request_id, requested_ttl_ms, expire_time)"
     "  SELECT r.product_id, r.quantity, 1, r.customer_id, r.request_id,"
     "    r.requested_ttl_ms,"
     "    now() + make_interval(secs => r.hold_ms::double precision / 1000)"
     "  FROM req r JOIN take t USING (product_id) ORDER BY r.request_id"
     "  RETURNING " RES_COLS},
    {"reservation_get",
     "SELECT " RES_COLS " FROM reservations WHERE id = $1 AND product_id = $2"},
    // Sweeper, step 1: claim due holds no other sweeper holds, expire them.
    {"expire_pick",
     "WITH due AS ("
     "  SELECT id FROM reservations WHERE status = 1 AND expire_time <= now()"
     "  ORDER BY expire_time LIMIT $1 FOR UPDATE SKIP LOCKED"
     ") UPDATE reservations r SET status = 4, update_time = now() FROM due"
     "  WHERE r.id = due.id"
     "  RETURNING r.product_id, r.quantity, r.backordered_quantity"},
    // Sweeper, step 2: lock the products concerned in ascending id order
    // before changing any (a fixed lock order: products, then the event
    // sequence their triggers take; so sweepers and single-product
    // statements cannot deadlock).
    {"expire_lock",
     "SELECT product_id FROM products WHERE product_id = ANY($1::bigint[])"
     "  ORDER BY product_id FOR NO KEY UPDATE"},
    // Sweeper, step 3: units back.
    {"expire_give",
     "UPDATE products SET reserved_quantity = reserved_quantity - $2,"
     "  backordered_quantity = backordered_quantity - $3,"
     "  version = version + 1, update_time = now() WHERE product_id = $1"},
    // Late backorder fill (ShardStore::FillLateBackorders), step 1: the
    // oldest queued fills (migration 0011) no other sweeper holds.
    {"late_fill_pick",
     "SELECT product_id FROM late_fills ORDER BY queued_at, product_id"
     "  LIMIT $1 FOR UPDATE SKIP LOCKED"},
    // Step 2: their products, in ascending id order, skipping those another
    // transaction holds; with their backordered units before the fill.
    {"late_fill_lock",
     "SELECT product_id, backordered_quantity FROM products"
     "  WHERE product_id = ANY($1::bigint[])"
     "  ORDER BY product_id FOR NO KEY UPDATE SKIP LOCKED"},
    // Step 3: the entries of the locked products leave the queue (the
    // trigger queues them again if it skips rows again).
    {"late_fill_dequeue",
     "DELETE FROM late_fills WHERE product_id = ANY($1::bigint[])"},
    // Last step: entries whose product is locked elsewhere go to the end.
    {"late_fill_requeue",
     "UPDATE late_fills SET queued_at = clock_timestamp()"
     "  WHERE product_id = ANY($1::bigint[])"},
    // Step 4: a write that changes no value runs the fill trigger on each.
    {"late_fill_run",
     "UPDATE products SET total_quantity = total_quantity"
     "  WHERE product_id = ANY($1::bigint[])"},
    // Step 5: a product whose fill gave units gets a new version ($2: the
    // backordered units before, in $1's order) ...
    {"late_fill_mark",
     "UPDATE products SET version = version + 1, update_time = now()"
     "  WHERE product_id = ANY($1::bigint[])"
     "    AND backordered_quantity"
     "        < ($2::bigint[])[array_position($1::bigint[], product_id)]"},
    // ... and the backordered units after, which say what was filled.
    {"late_fill_read",
     "SELECT product_id, backordered_quantity FROM products"
     "  WHERE product_id = ANY($1::bigint[])"},
    // After the read, for products the fill gave nothing: those queued
    // again whose counter backorders more than their rows (edited by hand)
    // leave the queue, since their fill falls short at every turn. Every
    // transaction changes a counter and its rows together, and the pass
    // holds these products' locks, so in this statement's snapshot they
    // agree unless they had drifted.
    {"late_fill_drop_drifted",
     "DELETE FROM late_fills q USING products p"
     "  WHERE q.product_id = ANY($1::bigint[])"
     "    AND p.product_id = q.product_id"
     "    AND p.backordered_quantity > (SELECT"
     "      coalesce(sum(r.backordered_quantity), 0)::bigint FROM reservations r"
     "      WHERE r.product_id = p.product_id AND r.backordered_quantity > 0"
     "        AND r.status IN (1, 2))"
     "  RETURNING q.product_id"},
    // Stock administration.
    {"adjust_lock",
     "SELECT " PRODUCT_COLS ", last_session_id,"
     "  coalesce(last_session_time > now() - make_interval(secs => $2::double"
     "    precision / 1000), false)"
     " FROM products WHERE product_id = $1 FOR UPDATE"},
    {"adjust_set_total",
     "UPDATE products SET total_quantity = $2, version = version + 1,"
     "  update_time = now(), last_session_id = nullif($3, ''),"
     "  last_session_time = now() WHERE product_id = $1"},
    {"adjust_audit",
     "INSERT INTO stock_adjustments (product_id, reason, total_before,"
     "  total_after, actor, session_id, note) VALUES ($1,$2,$3,$4,$5,$6,$7)"},
    {"update_product",
     "UPDATE products SET stock_policy = $2, low_stock_threshold = $3,"
     "  version = version + 1, update_time = now() WHERE product_id = $1"},
    // Listings, one statement with and one without the product filter:
    // sessions use generic plans (EnsureConnected), and a generic plan of
    // "$1 = 0 OR product_id = $1" could not use the product's index.
    {"list_reservations",
     "SELECT " RES_COLS " FROM reservations"
     " WHERE ($1::smallint = 0 OR status = $1) AND id > $2"
     " ORDER BY id LIMIT $3"},
    {"list_product_reservations",
     "SELECT " RES_COLS " FROM reservations"
     " WHERE product_id = $1 AND ($2::smallint = 0 OR status = $2)"
     "   AND id > $3 ORDER BY id LIMIT $4"},
    {"list_adjustments",
     "SELECT " ADJ_COLS " FROM stock_adjustments"
     " WHERE id > $1 ORDER BY id LIMIT $2"},
    {"list_product_adjustments",
     "SELECT " ADJ_COLS " FROM stock_adjustments"
     " WHERE product_id = $1 AND id > $2 ORDER BY id LIMIT $3"},
    {"read_events",
     "SELECT id, product_id, event_type, available_quantity,"
     "  low_stock_threshold, inv_us(create_time) FROM inventory_events"
     " WHERE id > $1 ORDER BY id LIMIT $2"},
};

ReservationRecord ParseReservation(const pqxx::row& row, int first) {
  ReservationRecord r;
  r.row_id = row[first + 0].as<int64_t>();
  r.product_id = row[first + 1].as<int64_t>();
  r.quantity = row[first + 2].as<int64_t>();
  r.status = static_cast<ReservationStatus>(row[first + 3].as<int>());
  r.customer_id = row[first + 4].as<std::string>();
  r.request_id = row[first + 5].as<std::string>();
  r.requested_ttl = absl::Milliseconds(row[first + 6].as<int64_t>());
  r.create_time = absl::FromUnixMicros(row[first + 7].as<int64_t>());
  r.expire_time = absl::FromUnixMicros(row[first + 8].as<int64_t>());
  r.update_time = absl::FromUnixMicros(row[first + 9].as<int64_t>());
  r.backordered_quantity = row[first + 10].as<int64_t>();
  return r;
}

ProductRecord ParseProduct(const pqxx::row& row) {
  ProductRecord p;
  p.product_id = row[0].as<int64_t>();
  p.total_quantity = row[1].as<int64_t>();
  p.reserved_quantity = row[2].as<int64_t>();
  p.purchased_quantity = row[3].as<int64_t>();
  p.stock_policy = static_cast<StockPolicy>(row[4].as<int>());
  p.low_stock_threshold = row[5].as<int64_t>();
  p.version = row[6].as<int64_t>();
  p.create_time = absl::FromUnixMicros(row[7].as<int64_t>());
  p.update_time = absl::FromUnixMicros(row[8].as<int64_t>());
  p.backordered_quantity = row[9].as<int64_t>();
  return p;
}

absl::Status NotFoundReservation(int64_t product_id, int64_t row_id) {
  std::string id = FormatReservationId({product_id, row_id});
  return MakeError(absl::StatusCode::kNotFound, reason::kReservationNotFound,
                   absl::StrCat("reservation ", id, " does not exist"),
                   {{"reservationId", id}});
}

absl::Status NotFoundProduct(int64_t product_id) {
  return MakeError(absl::StatusCode::kNotFound, reason::kProductNotFound,
                   absl::StrCat("product ", product_id, " does not exist"),
                   {{"productId", absl::StrCat(product_id)}});
}

absl::Status NotPending(const ReservationRecord& r, absl::string_view action) {
  std::string id = FormatReservationId({r.product_id, r.row_id});
  return MakeError(
      absl::StatusCode::kFailedPrecondition, reason::kReservationNotPending,
      absl::StrCat("cannot ", action, " reservation ", id, ": it is ",
                   ReservationStatusName(r.status)),
      {{"reservationId", id}, {"status", ReservationStatusName(r.status)}});
}

// Adds libpq keywords we rely on (bounded connect, dead-peer detection) unless
// the operator set them.
std::string ConnInfoWithDefaults(const std::string& conninfo) {
  const bool uri = absl::StartsWith(conninfo, "postgres://") ||
                   absl::StartsWith(conninfo, "postgresql://");
  std::string out = conninfo;
  const std::pair<const char*, const char*> defaults[] = {
      {"connect_timeout", "3"},
      {"keepalives_idle", "10"},
      {"keepalives_interval", "3"},
      {"keepalives_count", "3"},
  };
  for (const auto& [key, value] : defaults) {
    if (absl::StrContains(conninfo, key)) continue;
    if (uri) {
      absl::StrAppend(&out, out.find('?') == std::string::npos ? "?" : "&",
                      key, "=", value);
    } else {
      absl::StrAppend(&out, " ", key, "=", value);
    }
  }
  return out;
}

// Thrown inside a transaction to roll it back and return a status.
struct AbortWith {
  absl::Status status;
};

// How the service's sessions plan their statements (EnsureConnected sets it
// on every connection; tests check the plans under it).
constexpr char kPlannerSettings[] =
    // Every statement of the service finds its rows by index. A plan
    // PostgreSQL caches while a table is still nearly empty (a new
    // shard) would otherwise read it sequentially, and keep doing so as
    // it grows, until the next ANALYZE (measured: one run went from
    // about 330 us to 2.5 ms of database time per reservation).
    "SET enable_seqscan = off"
    // With sequential scans off, a statement whose only plan is one
    // (the one-row shard_identity and inventory_event_seq tables) is
    // costed at 1e10, far above jit_above_cost, so PostgreSQL compiled
    // it with LLVM, inlining included, at every execution: 8-50 ms of
    // CPU for the shard probe each second and for every event a
    // reservation emits, under the product's lock (measured, PostgreSQL
    // 15). No statement of the service is long enough to gain from JIT.
    "; SET jit = off"
    // Plan each prepared statement once. In the default mode PostgreSQL
    // plans the first five executions for their parameters and keeps
    // doing so when those were cheaper than the generic plan: the fast
    // path's statement, first run with small batches, was then planned
    // anew at every batch, about a quarter of a shard's CPU (measured:
    // bench/plan_cache.sh). Statements are written so that their generic
    // plans use the indexes.
    "; SET plan_cache_mode = force_generic_plan";

}  // namespace

std::vector<std::pair<std::string, std::string>> PreparedStatements() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : kStatements) out.emplace_back(s.name, s.sql);
  return out;
}

std::string PlannerSettings() { return kPlannerSettings; }

struct ShardStore::Connection {
  explicit Connection(const std::string& conninfo) : c(conninfo) {}
  pqxx::connection c;
};

ShardStore::ShardStore(int shard_index, Dsn dsn, ShardStoreOptions options)
    : shard_index_(shard_index),
      dsn_(std::move(dsn)),
      options_(std::move(options)) {}

ShardStore::~ShardStore() { Disconnect(); }

void ShardStore::Disconnect() {
  if (conn_ == nullptr) return;
  try {
    conn_->c.disconnect();
  } catch (...) {
  }
  conn_.reset();
}

void ShardStore::DropIfClosedByServer() {
  if (conn_ == nullptr) return;
  // Between calls the server has nothing to say: a readable socket means it
  // closed the session (a restart, pg_terminate_backend, an idle timeout)
  // or sent something unasked (a rare parameter report), and reconnecting
  // is right, or harmless, for both. Seen now, before a statement is sent,
  // the call is not lost to it: a call that must not run twice has no
  // retry after a broken connection.
  pollfd p{conn_->c.sock(), POLLIN, 0};
  if (p.fd >= 0 && poll(&p, 1, 0) == 0) return;
  spdlog::info("shard {}: the server closed the idle connection; reconnecting",
               shard_index_);
  Disconnect();
}

absl::Status ShardStore::EnsureConnected() {
  DropIfClosedByServer();
  if (conn_ != nullptr && conn_->c.is_open()) return absl::OkStatus();
  conn_.reset();
  try {
    auto conn =
        std::make_unique<Connection>(ConnInfoWithDefaults(dsn_.ForConnect()));
    pqxx::nontransaction setup(conn->c);
    // Setting up runs with the configured bound: a lock queue during the
    // prepares must not make a short call report the shard unreachable.
    const int64_t bound_ms = TimeoutMs(absl::InfiniteFuture());
    setup.exec(absl::StrCat(
        "SET statement_timeout = ", bound_ms,
        "; SET lock_timeout = ", ConfiguredLockTimeoutMs(),
        "; SET idle_in_transaction_session_timeout = 60000"
        // The reservation decision relies on READ COMMITTED's re-check of
        // the row a blocked UPDATE waited for: never inherit another level.
        "; SET default_transaction_isolation = 'read committed'"
        "; ", kPlannerSettings,
        "; SET application_name = ",
        setup.quote(options_.application_name)));
    setup.commit();
    if (options_.expected_shard_count > 0) {
      pqxx::nontransaction check(conn->c);
      // A shard never bootstrapped has no identity yet: nothing to check.
      const bool recorded =
          check.exec1("SELECT to_regclass('shard_identity') IS NOT NULL")[0]
              .as<bool>();
      pqxx::result id;
      if (recorded) {
        id = check.exec("SELECT shard_index, shard_count FROM shard_identity");
      }
      if (!id.empty() && (id[0][0].as<int>() != shard_index_ ||
                          id[0][1].as<int>() != options_.expected_shard_count)) {
        return IdentityMismatch(id[0][0].as<int>(), id[0][1].as<int>(),
                                options_.expected_shard_count);
      }
    }
    for (const auto& s : kStatements) conn->c.prepare(s.name, s.sql);
    // Then the bound and the lock wait of the call this connection was
    // opened for.
    const int64_t timeout_ms = TimeoutMs(call_deadline_);
    const int64_t lock_ms = LockTimeoutMs();
    if (timeout_ms != bound_ms || lock_ms != ConfiguredLockTimeoutMs()) {
      pqxx::nontransaction tx(conn->c);
      tx.exec(absl::StrCat("SET statement_timeout = ", timeout_ms,
                           "; SET lock_timeout = ", lock_ms));
    }
    conn_ = std::move(conn);
    statement_timeout_ms_ = timeout_ms;
    lock_timeout_ms_ = lock_ms;
    return absl::OkStatus();
  } catch (const std::exception& e) {
    // libpq's message may echo connection parameters: log it server-side
    // with the redacted DSN, never return it to a client.
    spdlog::warn("shard {} ({}): cannot connect: {}", shard_index_,
                 dsn_.Redacted(), e.what());
    conn_.reset();
    return ShardUnavailableError(shard_index_, "cannot connect");
  }
}

absl::Status ShardStore::IdentityMismatch(int recorded_index,
                                          int recorded_count,
                                          int shard_count) const {
  return MakeError(
      absl::StatusCode::kFailedPrecondition, reason::kShardIdentityMismatch,
      absl::StrCat(
          "shard at position ", shard_index_, " of --shards (",
          dsn_.Endpoint(), ") was initialised as shard ", recorded_index,
          " of ", recorded_count, ", but the list puts it at index ",
          shard_index_, " of ", shard_count,
          ". Products are placed by product_id mod N, so serving with this "
          "list would misroute them. Restore the original order and length "
          "of --shards."),
      {{"shard", absl::StrCat(shard_index_)}});
}

int64_t ShardStore::ConfiguredLockTimeoutMs() const {
  const absl::Duration lock = options_.lock_timeout > absl::ZeroDuration()
                                  ? options_.lock_timeout
                                  : options_.statement_timeout * 4 / 5;
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(lock));
}

int64_t ShardStore::LockTimeoutMs() const {
  const int64_t configured = ConfiguredLockTimeoutMs();
  return lock_wait_ms_ > 0 ? std::min(lock_wait_ms_, configured) : configured;
}

int64_t ShardStore::TimeoutMs(absl::Time deadline) const {
  constexpr int64_t kStepMs = 250;
  const int64_t cap = absl::ToInt64Milliseconds(options_.statement_timeout);
  if (deadline == absl::InfiniteFuture()) return cap;
  const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
  return std::min(cap,
                  std::max(kStepMs, (left + kStepMs - 1) / kStepMs * kStepMs));
}

void ShardStore::SetCallDeadline(absl::Time deadline) {
  call_deadline_ = deadline;
  SetSessionTimeout("statement_timeout", TimeoutMs(deadline),
                    &statement_timeout_ms_);
}

void ShardStore::SetLockWait(absl::Duration wait) {
  lock_wait_ms_ = wait > absl::ZeroDuration()
                      ? std::max<int64_t>(1, absl::ToInt64Milliseconds(wait))
                      : 0;
  SetSessionTimeout("lock_timeout", LockTimeoutMs(), &lock_timeout_ms_);
}

void ShardStore::SetSessionTimeout(const char* name, int64_t ms,
                                   int64_t* in_force) {
  // Not connected yet: EnsureConnected starts with this value.
  if (conn_ == nullptr || ms == *in_force) return;
  // A closed session is replaced by the call itself, with this value.
  DropIfClosedByServer();
  if (conn_ == nullptr) return;
  try {
    pqxx::nontransaction tx(conn_->c);
    tx.exec(absl::StrCat("SET ", name, " = ", ms));
    *in_force = ms;
  } catch (const std::exception& e) {
    // Translate drops a broken connection; the call's own statement then
    // reconnects or reports the error.
    Translate(absl::StrCat("set ", name).c_str(), e).IgnoreError();
  }
}

absl::Status ShardStore::Translate(const char* what, const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    spdlog::warn("shard {}: connection lost during {}: {}", shard_index_, what,
                 e.what());
    Disconnect();
    // A statement that commits by itself may have committed before the
    // connection broke: the caller cannot know.
    return ShardUnavailableError(
        shard_index_,
        "connection lost; a change may have been made, retry with the same "
        "request_id");
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    spdlog::error("shard {}: outcome of {} unknown: {}", shard_index_, what,
                  e.what());
    Disconnect();
    return ShardUnavailableError(
        shard_index_,
        "connection lost while committing; the outcome is unknown, retry "
        "with the same request_id");
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    // Serialisation failure or deadlock, still there after our retries.
    return MakeError(absl::StatusCode::kAborted, reason::kConcurrentUpdate,
                     "the change collided with concurrent ones; retry",
                     {{"shard", absl::StrCat(shard_index_)}});
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    if (state == "57014") {  // query_canceled: statement_timeout
      return MakeError(absl::StatusCode::kDeadlineExceeded,
                       reason::kDeadlineExceeded,
                       absl::StrCat("shard ", shard_index_,
                                    " did not answer in time"),
                       {{"shard", absl::StrCat(shard_index_)}});
    }
    if (state == "55P03") {  // lock_not_available: lock_timeout
      return MakeError(absl::StatusCode::kAborted, reason::kConcurrentUpdate,
                       "a row it needs is locked by another transaction; "
                       "nothing was changed, retry",
                       {{"shard", absl::StrCat(shard_index_)},
                        {std::string(kLockTimeoutKey), "true"}});
    }
    if (state == "40001" || state == "40P01") {
      return MakeError(absl::StatusCode::kAborted, reason::kConcurrentUpdate,
                       "the change collided with a concurrent one; retry",
                       {{"shard", absl::StrCat(shard_index_)}});
    }
    if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P") ||
        state == "53300") {
      spdlog::warn("shard {}: {} failed: {} ({})", shard_index_, what,
                   e.what(), state);
      Disconnect();
      return ShardUnavailableError(shard_index_, "the server is not accepting "
                                                 "work");
    }
    if (state == "23514") {
      spdlog::critical(
          "shard {}: {} hit the database's invariant guard (CHECK): {}",
          shard_index_, what, e.what());
    } else {
      spdlog::error("shard {}: {} failed: {} (sqlstate {}, query: {})",
                    shard_index_, what, e.what(), state, sql->query());
    }
    return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                     "internal error; it has been logged");
  }
  spdlog::error("shard {}: {} failed: {}", shard_index_, what, e.what());
  if (conn_ != nullptr && !conn_->c.is_open()) Disconnect();
  return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                   "internal error; it has been logged");
}

template <typename Fn>
auto ShardStore::Run(const char* what, Fn&& fn, bool idempotent)
    -> decltype(fn()) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  bool reconnected = false;
  for (int attempt = 1;; ++attempt) {
    try {
      return fn();
    } catch (const AbortWith& a) {
      return a.status;
    } catch (const pqxx::transaction_rollback& e) {
      // Serialisation failure or deadlock: nothing was changed; try again.
      if (attempt < 4) continue;
      return Translate(what, e);
    } catch (const pqxx::broken_connection& e) {
      if (idempotent && !reconnected) {
        spdlog::info("shard {}: connection broken during {}; reconnecting",
                     shard_index_, what);
        reconnected = true;
        Disconnect();
        if (EnsureConnected().ok()) continue;
      }
      return Translate(what, e);
    } catch (const std::exception& e) {
      return Translate(what, e);
    }
  }
}

absl::Status ShardStore::Ping() {
  return Run("ping", [&]() -> absl::Status {
    pqxx::nontransaction tx(conn_->c);
    tx.exec("SELECT 1");
    return absl::OkStatus();
  });
}

absl::Status ShardStore::CheckIdentity(int shard_count) {
  return Run("check identity", [&]() -> absl::Status {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r =
        tx.exec("SELECT shard_index, shard_count FROM shard_identity");
    const int index = r.empty() ? -1 : r[0][0].as<int>();
    const int count = r.empty() ? -1 : r[0][1].as<int>();
    if (index != shard_index_ || count != shard_count) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard at position ", shard_index_, " of --shards (",
          dsn_.Endpoint(), ") now says it is shard ", index, " of ", count,
          ", but the list puts it at index ", shard_index_, " of ",
          shard_count,
          ". Serving on would misroute products; stopping. Check which "
          "database the connection string reaches (a failover?)."));
    }
    return absl::OkStatus();
  });
}

absl::Status ShardStore::Bootstrap(int shard_count) {
  return Run("bootstrap", [&]() -> absl::Status {
    pqxx::work tx(conn_->c);
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kBootstrapLockKey);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    std::set<int> applied;
    for (const auto& row : tx.exec("SELECT version FROM schema_migrations")) {
      applied.insert(row[0].as<int>());
    }
    for (const Migration& m : AllMigrations()) {
      if (applied.count(m.version) > 0) continue;
      spdlog::info("shard {}: applying migration {:04d}_{}", shard_index_,
                   m.version, m.name);
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO schema_migrations (version, name) "
                     "VALUES ($1, $2)",
                     m.version, m.name);
    }
    tx.exec_params(
        "INSERT INTO shard_identity (shard_index, shard_count) VALUES ($1, $2)"
        " ON CONFLICT (singleton) DO NOTHING",
        shard_index_, shard_count);
    pqxx::row id =
        tx.exec1("SELECT shard_index, shard_count FROM shard_identity");
    const int index = id[0].as<int>();
    const int count = id[1].as<int>();
    if (index != shard_index_ || count != shard_count) {
      tx.abort();
      return IdentityMismatch(index, count, shard_count);
    }
    tx.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<ShardDescription> ShardStore::Describe() {
  return Run("describe", [&]() -> absl::StatusOr<ShardDescription> {
    pqxx::nontransaction tx(conn_->c);
    ShardDescription d;
    d.server_version = tx.exec1("SHOW server_version")[0].as<std::string>();
    auto id = tx.exec(
        "SELECT shard_index, shard_count FROM shard_identity");
    if (!id.empty()) {
      d.recorded_index = id[0][0].as<int>();
      d.recorded_count = id[0][1].as<int>();
    }
    d.schema_version = tx.exec1(
        "SELECT coalesce(max(version), 0) FROM schema_migrations")[0]
                           .as<int>();
    return d;
  });
}

absl::StatusOr<ProductRecord> ShardStore::CreateProduct(
    const NewProduct& product) {
  return Run("create product", [&]() -> absl::StatusOr<ProductRecord> {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared(
        "product_insert", product.product_id, product.total_quantity,
        static_cast<int>(product.stock_policy), product.low_stock_threshold);
    if (r.empty()) {
      return MakeError(
          absl::StatusCode::kAlreadyExists, reason::kProductExists,
          absl::StrCat("product ", product.product_id, " already exists"),
          {{"productId", absl::StrCat(product.product_id)}});
    }
    return ParseProduct(r[0]);
  }, /*idempotent=*/false);
}

absl::StatusOr<ProductRecord> ShardStore::GetProduct(int64_t product_id) {
  return Run("get product", [&]() -> absl::StatusOr<ProductRecord> {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("product_get", product_id);
    if (r.empty()) return NotFoundProduct(product_id);
    return ParseProduct(r[0]);
  });
}

absl::StatusOr<std::vector<AvailabilityRecord>> ShardStore::GetAvailability(
    const std::vector<int64_t>& product_ids) {
  return Run("availability",
             [&]() -> absl::StatusOr<std::vector<AvailabilityRecord>> {
               pqxx::nontransaction tx(conn_->c);
               std::string array =
                   absl::StrCat("{", absl::StrJoin(product_ids, ","), "}");
               std::vector<AvailabilityRecord> out;
               for (const auto& row : tx.exec_prepared("availability", array)) {
                 out.push_back({row[0].as<int64_t>(), row[1].as<int64_t>()});
               }
               return out;
             });
}

namespace {

// The answer to a request id seen before: the same reservation if the
// parameters match, REQUEST_ID_CONFLICT otherwise.
absl::StatusOr<ReserveOutcome> Replay(const ReserveCommand& c,
                                      ReservationRecord prior) {
  if (prior.product_id != c.product_id || prior.quantity != c.quantity ||
      prior.customer_id != c.customer_id ||
      prior.requested_ttl != c.requested_ttl) {
    std::string id = FormatReservationId({prior.product_id, prior.row_id});
    return MakeError(
        absl::StatusCode::kFailedPrecondition, reason::kRequestIdConflict,
        absl::StrCat("request_id '", c.request_id,
                     "' was already used for reservation ", id,
                     " with different parameters; use a new request_id for a "
                     "new reservation"),
        {{"requestId", c.request_id}, {"reservationId", id}});
  }
  return ReserveOutcome{std::move(prior), /*replayed=*/true};
}

}  // namespace

namespace {

// A PostgreSQL array literal of numbers.
template <typename T>
std::string NumberArray(const std::vector<T>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

// A PostgreSQL array literal of strings, each quoted and escaped.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

// A batch's requests as the parallel arrays the batch statements take
// (releases and commits carry product and row; reserves the rest).
struct OpArrays {
  explicit OpArrays(const std::vector<ReservationOp>& ops)
      : kinds(ops.size()), products(ops.size()), rows(ops.size()),
        quantities(ops.size()), requested(ops.size()), holds(ops.size()),
        customers(ops.size()), requests(ops.size()) {
    for (size_t i = 0; i < ops.size(); ++i) {
      const ReservationOp& op = ops[i];
      kinds[i] = static_cast<int>(op.kind);
      if (op.kind == ReservationOp::Kind::kReserve) {
        products[i] = op.reserve.product_id;
        quantities[i] = op.reserve.quantity;
        customers[i] = op.reserve.customer_id;
        requests[i] = op.reserve.request_id;
        requested[i] = absl::ToInt64Milliseconds(op.reserve.requested_ttl);
        holds[i] = absl::ToInt64Milliseconds(op.reserve.hold_ttl);
      } else {
        products[i] = op.product_id;
        rows[i] = op.row_id;
      }
    }
  }
  std::vector<int> kinds;
  std::vector<int64_t> products, rows, quantities, requested, holds;
  std::vector<std::string> customers, requests;
};

// The answer to one request of a batch, from inv_apply_batch's row.
absl::StatusOr<ReserveOutcome> BatchAnswer(const ReservationOp& op,
                                           const pqxx::row& row) {
  const int outcome = row[1].as<int>();
  ReservationRecord rec;
  if (!row[3].is_null()) rec = ParseReservation(row, 3);
  switch (outcome) {
    case 1:
      return ReserveOutcome{std::move(rec), false};
    case 2:
    case 4:
      return Replay(op.reserve, std::move(rec));
    case 3: {
      const ReserveCommand& c = op.reserve;
      const int64_t available = row[2].as<int64_t>();
      return MakeError(
          absl::StatusCode::kFailedPrecondition, reason::kOutOfStock,
          absl::StrCat("product ", c.product_id, " has ", available,
                       " units available, ", c.quantity, " requested"),
          {{"productId", absl::StrCat(c.product_id)},
           {"requested", absl::StrCat(c.quantity)},
           {"available", absl::StrCat(available)}});
    }
    case 5:
      return NotFoundProduct(op.reserve.product_id);
    case 6:
      return NotFoundReservation(op.product_id, op.row_id);
    case 7:
      return NotPending(rec, op.kind == ReservationOp::Kind::kRelease
                                 ? "release"
                                 : "commit");
    case 8:
    case 9:
      return ReserveOutcome{std::move(rec), outcome == 9};
  }
  return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                   "internal error; it has been logged");
}

}  // namespace

absl::StatusOr<std::vector<absl::StatusOr<ReserveOutcome>>>
ShardStore::ApplyBatch(const std::vector<ReservationOp>& ops) {
  using Answers = std::vector<absl::StatusOr<ReserveOutcome>>;
  return Run("apply batch", [&]() -> absl::StatusOr<Answers> {
    const size_t n = ops.size();
    const OpArrays a(ops);
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared(
        "apply_batch", NumberArray(a.kinds), NumberArray(a.products),
        NumberArray(a.rows), NumberArray(a.quantities),
        TextArray(a.customers), TextArray(a.requests),
        NumberArray(a.requested), NumberArray(a.holds));
    // The decided prefix: all of ops, or up to the first request after
    // which a backorder fill runs that a later request sees (migrations
    // 0008, 0010).
    if (r.empty() || r.size() > n) {
      spdlog::error("shard {}: inv_apply_batch answered {} rows for {} requests",
                    shard_index_, r.size(), n);
      return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                       "internal error; it has been logged");
    }
    Answers answers;
    answers.reserve(r.size());
    for (size_t i = 0; i < r.size(); ++i) {
      answers.push_back(BatchAnswer(ops[i], r[i]));
    }
    return answers;
  });
}

absl::StatusOr<std::vector<std::optional<ReservationRecord>>>
ShardStore::GrantWholeProducts(const std::vector<ReservationOp>& ops) {
  using Granted = std::vector<std::optional<ReservationRecord>>;
  const size_t n = ops.size();
  // A product that a request id used twice in the batch names needs the
  // group transaction's one-at-a-time decision (the second is a replay or a
  // conflict of the first): all of its requests are left to it, so they keep
  // their order among themselves. Releases and commits are left to it too;
  // the reserves of their products may still be granted here, since
  // reserves that all fit without the units a release frees fit with them,
  // and a commit takes no stock.
  std::set<int64_t> left_out;
  std::map<std::string_view, int64_t> product_of_id;
  for (const ReservationOp& op : ops) {
    if (op.kind != ReservationOp::Kind::kReserve) continue;
    auto [it, first] =
        product_of_id.emplace(op.reserve.request_id, op.reserve.product_id);
    if (!first) {
      left_out.insert(it->second);
      left_out.insert(op.reserve.product_id);
    }
  }
  std::vector<size_t> tried;  // indexes into ops
  std::vector<ReservationOp> tried_ops;
  for (size_t i = 0; i < n; ++i) {
    if (ops[i].kind == ReservationOp::Kind::kReserve &&
        left_out.count(ops[i].reserve.product_id) == 0) {
      tried.push_back(i);
      tried_ops.push_back(ops[i]);
    }
  }
  if (tried.empty()) return Granted(n);
  const OpArrays a(tried_ops);
  // A granted row's request id -> its op.
  std::map<std::string_view, size_t> index;
  for (size_t k = 0; k < tried.size(); ++k) index.emplace(a.requests[k], tried[k]);
  return Run("grant whole products", [&]() -> absl::StatusOr<Granted> {
    Granted granted(n);
    pqxx::result r;
    try {
      pqxx::nontransaction tx(conn_->c);
      r = tx.exec_prepared("grant_whole", NumberArray(a.products),
                           NumberArray(a.quantities), TextArray(a.customers),
                           TextArray(a.requests), NumberArray(a.requested),
                           NumberArray(a.holds));
    } catch (const pqxx::unique_violation&) {
      // A request id of the batch was committed meanwhile by another
      // transaction: nothing was applied; the group transaction answers it
      // as the replay (or conflict) it is.
      return granted;
    }
    for (const auto& row : r) {
      ReservationRecord rec = ParseReservation(row, 0);
      auto it = index.find(rec.request_id);
      if (it == index.end()) {
        spdlog::error("shard {}: grant_whole answered unknown request id",
                      shard_index_);
        return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                         "internal error; it has been logged");
      }
      granted[it->second] = std::move(rec);
    }
    return granted;
  });
}

namespace {

// The single answer of a one-request batch.
absl::StatusOr<ReserveOutcome> Single(
    absl::StatusOr<std::vector<absl::StatusOr<ReserveOutcome>>> batch) {
  if (!batch.ok()) return batch.status();
  return std::move(batch->front());
}

}  // namespace

absl::StatusOr<ReserveOutcome> ShardStore::Reserve(const ReserveCommand& c) {
  ReservationOp op;
  op.kind = ReservationOp::Kind::kReserve;
  op.reserve = c;
  return Single(ApplyBatch({op}));
}

absl::StatusOr<ReservationRecord> ShardStore::Release(int64_t product_id,
                                                      int64_t row_id) {
  ReservationOp op;
  op.kind = ReservationOp::Kind::kRelease;
  op.product_id = product_id;
  op.row_id = row_id;
  absl::StatusOr<ReserveOutcome> r = Single(ApplyBatch({op}));
  if (!r.ok()) return r.status();
  return std::move(r->reservation);
}

absl::StatusOr<ReservationRecord> ShardStore::Commit(int64_t product_id,
                                                     int64_t row_id) {
  ReservationOp op;
  op.kind = ReservationOp::Kind::kCommit;
  op.product_id = product_id;
  op.row_id = row_id;
  absl::StatusOr<ReserveOutcome> r = Single(ApplyBatch({op}));
  if (!r.ok()) return r.status();
  return std::move(r->reservation);
}

absl::StatusOr<ReservationRecord> ShardStore::GetReservation(
    int64_t product_id, int64_t row_id) {
  return Run("get reservation", [&]() -> absl::StatusOr<ReservationRecord> {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("reservation_get", row_id, product_id);
    if (r.empty()) return NotFoundReservation(product_id, row_id);
    return ParseReservation(r[0], 0);
  });
}

absl::StatusOr<int> ShardStore::ExpireDue(int limit) {
  return Run("expire", [&]() -> absl::StatusOr<int> {
    pqxx::work tx(conn_->c);
    pqxx::result due = tx.exec_prepared("expire_pick", limit);
    // product -> (units, backordered units); ascending id: the lock order.
    std::map<int64_t, std::pair<int64_t, int64_t>> by_product;
    for (const auto& row : due) {
      auto& [units, backordered] = by_product[row[0].as<int64_t>()];
      units += row[1].as<int64_t>();
      backordered += row[2].as<int64_t>();
    }
    if (by_product.size() > 1) {
      std::vector<int64_t> ids;
      for (const auto& entry : by_product) ids.push_back(entry.first);
      tx.exec_prepared("expire_lock",
                       absl::StrCat("{", absl::StrJoin(ids, ","), "}"));
    }
    for (const auto& [product_id, units] : by_product) {
      tx.exec_prepared("expire_give", product_id, units.first, units.second);
    }
    tx.commit();
    return static_cast<int>(due.size());
  });
}

absl::StatusOr<LateFill> ShardStore::FillLateBackorders(int limit) {
  return Run("late fill", [&]() -> absl::StatusOr<LateFill> {
    pqxx::work tx(conn_->c);
    LateFill fill;
    pqxx::result queued = tx.exec_prepared("late_fill_pick", limit);
    if (queued.empty()) {
      tx.commit();
      return fill;
    }
    std::vector<int64_t> picked;
    for (const auto& row : queued) picked.push_back(row[0].as<int64_t>());
    std::vector<int64_t> ids, before;
    for (const auto& row :
         tx.exec_prepared("late_fill_lock", NumberArray(picked))) {
      ids.push_back(row[0].as<int64_t>());
      before.push_back(row[1].as<int64_t>());
    }
    fill.products = static_cast<int>(ids.size());
    if (!ids.empty()) {
      const std::string id_array = NumberArray(ids);
      tx.exec_prepared("late_fill_dequeue", id_array);
      tx.exec_prepared("late_fill_run", id_array);
      tx.exec_prepared("late_fill_mark", id_array, NumberArray(before));
      // Read after the mark: its own write can run the fill once more.
      pqxx::result after = tx.exec_prepared("late_fill_read", id_array);
      std::vector<int64_t> gave_nothing;
      for (const auto& row : after) {
        const int64_t id = row[0].as<int64_t>();
        const size_t k = std::find(ids.begin(), ids.end(), id) - ids.begin();
        const int64_t gave = before[k] - row[1].as<int64_t>();
        if (gave > 0) {
          fill.units += gave;
          ++fill.filled_products;
        } else {
          gave_nothing.push_back(id);
        }
      }
      if (!gave_nothing.empty()) {
        for (const auto& row : tx.exec_prepared("late_fill_drop_drifted",
                                                NumberArray(gave_nothing))) {
          fill.dropped.push_back(row[0].as<int64_t>());
        }
        std::sort(fill.dropped.begin(), fill.dropped.end());
      }
    }
    // Last, just before the commit: a fill of a product held elsewhere
    // that queues it again waits for this update to commit.
    std::vector<int64_t> held_elsewhere;
    for (int64_t id : picked) {
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
        held_elsewhere.push_back(id);
      }
    }
    if (!held_elsewhere.empty()) {
      tx.exec_prepared("late_fill_requeue", NumberArray(held_elsewhere));
    }
    tx.commit();
    return fill;
  });
}

namespace {

absl::Status EtagMismatch(const ProductRecord& p, absl::string_view given) {
  return MakeError(
      absl::StatusCode::kAborted, reason::kEtagMismatch,
      absl::StrCat("product ", p.product_id, " changed since etag '", given,
                   "' was read; read it again and retry"),
      {{"productId", absl::StrCat(p.product_id)},
       {"currentEtag", absl::StrCat(p.version)}});
}

// `committed`: the units the total must cover (for a BACKORDER product,
// those held or sold from stock, its backorders not counted).
absl::Status BelowCommitted(const ProductRecord& p, int64_t total,
                            int64_t committed, absl::string_view why) {
  return MakeError(
      absl::StatusCode::kFailedPrecondition, reason::kStockBelowCommitted,
      absl::StrCat("product ", p.product_id, ": ", why),
      {{"productId", absl::StrCat(p.product_id)},
       {"requestedTotal", absl::StrCat(total)},
       {"committed", absl::StrCat(committed)}});
}

}  // namespace

absl::StatusOr<ProductRecord> ShardStore::AdjustStock(
    const AdjustStockCommand& c) {
  return Run("adjust stock", [&]() -> absl::StatusOr<ProductRecord> {
    pqxx::work tx(conn_->c);
    pqxx::result r = tx.exec_prepared(
        "adjust_lock", c.product_id,
        absl::ToInt64Milliseconds(c.session_window));
    if (r.empty()) return NotFoundProduct(c.product_id);
    ProductRecord p = ParseProduct(r[0]);
    const std::string last_session =
        r[0][10].is_null() ? "" : r[0][10].as<std::string>();
    const bool in_window = r[0][11].as<bool>();
    // The etag check, skipped for the session's own quick successive edits.
    const bool own_recent_edit = !c.session_id.empty() &&
                                 c.session_id == last_session && in_window;
    if (!c.etag.empty() && c.etag != absl::StrCat(p.version) &&
        !own_recent_edit) {
      return EtagMismatch(p, c.etag);
    }
    // Both terms are within the total limit (validation and this check), so
    // the sum cannot overflow.
    const int64_t total =
        c.delta.has_value() ? p.total_quantity + *c.delta : *c.new_total;
    if (total > c.max_total) {
      return MakeError(
          absl::StatusCode::kFailedPrecondition, reason::kStockAboveLimit,
          absl::StrCat("product ", p.product_id, ": a total of ", total,
                       " is above the limit of ", c.max_total),
          {{"productId", absl::StrCat(p.product_id)},
           {"requestedTotal", absl::StrCat(total)},
           {"maxTotal", absl::StrCat(c.max_total)}});
    }
    // Units held or sold out of stock (for BACKORDER: not backordered)
    // must stay covered by the total.
    const int64_t covered = p.reserved_quantity + p.purchased_quantity -
                            (p.stock_policy == StockPolicy::kBackorder
                                 ? p.backordered_quantity
                                 : 0);
    if (total < 0) {
      return BelowCommitted(p, total, covered,
                            "the total would fall below zero");
    }
    if (total < covered) {
      return BelowCommitted(
          p, total, covered,
          absl::StrCat("a total of ", total, " is below the ", covered,
                       " units already held or sold from stock"));
    }
    tx.exec_prepared("adjust_set_total", c.product_id, total, c.session_id);
    tx.exec_prepared("adjust_audit", c.product_id, c.reason, p.total_quantity,
                     total, c.actor, c.session_id, c.note);
    // Read back: the triggers may have filled backorders.
    ProductRecord after =
        ParseProduct(tx.exec_prepared1("product_get", c.product_id));
    tx.commit();
    return after;
  }, /*idempotent=*/false);
}

absl::StatusOr<ProductRecord> ShardStore::UpdateProduct(
    const ProductUpdate& u) {
  return Run("update product", [&]() -> absl::StatusOr<ProductRecord> {
    pqxx::work tx(conn_->c);
    pqxx::result r = tx.exec_prepared("adjust_lock", u.product_id, 0);
    if (r.empty()) return NotFoundProduct(u.product_id);
    ProductRecord p = ParseProduct(r[0]);
    if (!u.etag.empty() && u.etag != absl::StrCat(p.version)) {
      return EtagMismatch(p, u.etag);
    }
    const StockPolicy policy = u.stock_policy.value_or(p.stock_policy);
    const int64_t threshold =
        u.low_stock_threshold.value_or(p.low_stock_threshold);
    if (policy == StockPolicy::kStrict &&
        (p.reserved_quantity + p.purchased_quantity > p.total_quantity ||
         p.backordered_quantity > 0)) {
      return BelowCommitted(p, p.total_quantity,
                            p.reserved_quantity + p.purchased_quantity,
                            "cannot become STRICT while units are "
                            "backordered; restock first");
    }
    // Nothing to change: the product, and its etag, stay as they are.
    if (policy == p.stock_policy && threshold == p.low_stock_threshold) {
      tx.commit();
      return p;
    }
    tx.exec_prepared("update_product", u.product_id,
                     static_cast<int>(policy), threshold);
    ProductRecord after =
        ParseProduct(tx.exec_prepared1("product_get", u.product_id));
    tx.commit();
    return after;
  }, /*idempotent=*/false);
}

absl::StatusOr<std::vector<ReservationRecord>> ShardStore::ListReservations(
    const ReservationFilter& filter, int64_t after_id, int limit) {
  return Run("list reservations",
             [&]() -> absl::StatusOr<std::vector<ReservationRecord>> {
               pqxx::nontransaction tx(conn_->c);
               const pqxx::result r =
                   filter.product_id != 0
                       ? tx.exec_prepared("list_product_reservations",
                                          filter.product_id, filter.status,
                                          after_id, limit)
                       : tx.exec_prepared("list_reservations", filter.status,
                                          after_id, limit);
               std::vector<ReservationRecord> out;
               for (const auto& row : r) out.push_back(ParseReservation(row, 0));
               return out;
             });
}

absl::StatusOr<std::vector<StockAdjustmentRecord>>
ShardStore::ListStockAdjustments(int64_t product_id, int64_t after_id,
                                 int limit) {
  return Run("list adjustments",
             [&]() -> absl::StatusOr<std::vector<StockAdjustmentRecord>> {
               pqxx::nontransaction tx(conn_->c);
               const pqxx::result r =
                   product_id != 0
                       ? tx.exec_prepared("list_product_adjustments",
                                          product_id, after_id, limit)
                       : tx.exec_prepared("list_adjustments", after_id, limit);
               std::vector<StockAdjustmentRecord> out;
               for (const auto& row : r) {
                 StockAdjustmentRecord a;
                 a.id = row[0].as<int64_t>();
                 a.product_id = row[1].as<int64_t>();
                 a.reason = row[2].as<int>();
                 a.total_before = row[3].as<int64_t>();
                 a.total_after = row[4].as<int64_t>();
                 a.actor = row[5].as<std::string>();
                 a.session_id = row[6].as<std::string>();
                 a.note = row[7].as<std::string>();
                 a.create_time = absl::FromUnixMicros(row[8].as<int64_t>());
                 out.push_back(std::move(a));
               }
               return out;
             });
}

absl::StatusOr<std::vector<InventoryEventRecord>> ShardStore::ReadEvents(
    int64_t after_id, int limit) {
  return Run("read events",
             [&]() -> absl::StatusOr<std::vector<InventoryEventRecord>> {
               pqxx::nontransaction tx(conn_->c);
               std::vector<InventoryEventRecord> out;
               for (const auto& row :
                    tx.exec_prepared("read_events", after_id, limit)) {
                 InventoryEventRecord e;
                 e.id = row[0].as<int64_t>();
                 e.product_id = row[1].as<int64_t>();
                 e.type = row[2].as<int>();
                 e.available = row[3].as<int64_t>();
                 e.low_stock_threshold = row[4].as<int64_t>();
                 e.create_time = absl::FromUnixMicros(row[5].as<int64_t>());
                 out.push_back(e);
               }
               return out;
             });
}

absl::StatusOr<int64_t> ShardStore::LastEventId() {
  return Run("last event id", [&]() -> absl::StatusOr<int64_t> {
    pqxx::nontransaction tx(conn_->c);
    return tx.exec1("SELECT last_id FROM inventory_event_seq")[0].as<int64_t>();
  });
}

absl::StatusOr<ShardVerification> ShardStore::VerifyCounters() {
  return Run("verify", [&]() -> absl::StatusOr<ShardVerification> {
    pqxx::work tx(conn_->c);
    // A full scan: give it more than the hot-path statement timeout.
    tx.exec("SET LOCAL statement_timeout = '120s'");
    // The one statement meant to read whole tables (see EnsureConnected).
    tx.exec("SET LOCAL enable_seqscan = on");
    ShardVerification v;
    v.products_checked =
        tx.exec1("SELECT count(*) FROM products")[0].as<int64_t>();
    pqxx::result r = tx.exec(
        "SELECT p.product_id,"
        "  p.reserved_quantity, coalesce(s.pending, 0),"
        "  p.purchased_quantity, coalesce(s.purchased, 0),"
        "  p.backordered_quantity, coalesce(s.backordered, 0)"
        " FROM products p LEFT JOIN ("
        "  SELECT product_id,"
        "    sum(quantity) FILTER (WHERE status = 1) AS pending,"
        "    sum(quantity) FILTER (WHERE status = 2) AS purchased,"
        "    sum(backordered_quantity) FILTER (WHERE status IN (1, 2))"
        "      AS backordered"
        "  FROM reservations GROUP BY product_id) s USING (product_id)"
        " WHERE p.reserved_quantity <> coalesce(s.pending, 0)"
        "    OR p.purchased_quantity <> coalesce(s.purchased, 0)"
        "    OR p.backordered_quantity <> coalesce(s.backordered, 0)"
        " ORDER BY p.product_id");
    const char* fields[] = {"reserved_quantity", "purchased_quantity",
                            "backordered_quantity"};
    for (const auto& row : r) {
      for (int f = 0; f < 3; ++f) {
        int64_t recorded = row[1 + 2 * f].as<int64_t>();
        int64_t computed = row[2 + 2 * f].as<int64_t>();
        if (recorded != computed) {
          v.drifts.push_back(
              {row[0].as<int64_t>(), fields[f], recorded, computed});
        }
      }
    }
    tx.commit();
    return v;
  });
}

}  // namespace inventory
