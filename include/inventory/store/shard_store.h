// The shard store: every SQL statement of the service lives here. One
// ShardStore owns one PostgreSQL connection and is used by one thread only.
// No exception crosses it: every method returns absl::Status(Or).
//
// Reservations are decided in GrantWholeProducts() (the fast path: one
// statement for products whose stock covers all their requests of a batch)
// and ApplyBatch() (inv_apply_batch, migrations 0004 and 0010, in arrival
// order). Both take units with conditional counter updates on the locked
// product row, never a count of rows, so concurrent batches never oversell a
// STRICT product.
#ifndef INVENTORY_STORE_SHARD_STORE_H_
#define INVENTORY_STORE_SHARD_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inventory/store/dsn.h"
#include "inventory/store/model.h"

namespace inventory {

// What CheckShards-style tools want to know about a shard.
struct ShardDescription {
  std::string server_version;
  int recorded_index = -1;
  int recorded_count = -1;
  int schema_version = 0;
};

// Settings of one shard connection.
struct ShardStoreOptions {
  // Upper bound of any one statement on the server (statement_timeout).
  absl::Duration statement_timeout = absl::Seconds(5);
  // How long to wait for a row lock before giving up (lock_timeout; the
  // answer is then CONCURRENT_UPDATE, "nothing changed"). Zero: 4/5 of
  // statement_timeout, so that a lock wait ends before the statement's own
  // bound would (DEADLINE_EXCEEDED, "outcome unknown").
  absl::Duration lock_timeout = absl::ZeroDuration();
  // application_name seen in pg_stat_activity.
  std::string application_name = "inventoryd";
  // If > 0, every new connection checks that the shard's recorded identity
  // (if it has one yet) is (shard_index, expected_shard_count), and refuses
  // to serve otherwise (a failover or DNS change to the wrong database).
  int expected_shard_count = 0;
};

// One connection to one shard and every statement the service runs on it.
class ShardStore {
 public:
  ShardStore(int shard_index, Dsn dsn, ShardStoreOptions options = {});
  ~ShardStore();
  ShardStore(const ShardStore&) = delete;
  ShardStore& operator=(const ShardStore&) = delete;

  int shard_index() const { return shard_index_; }
  const Dsn& dsn() const { return dsn_; }

  // Connects if not connected (and prepares statements). UNAVAILABLE
  // SHARD_UNAVAILABLE when the shard cannot be reached.
  absl::Status EnsureConnected();

  // Drops the connection (next call reconnects).
  void Disconnect();

  // Bounds the statements of the next call by the time left until
  // `deadline` (statement_timeout, capped by the configured one). Issues a
  // SET only when the bound changes by a step (250 ms), so calls with the
  // usual deadlines cost no extra round trip. Not connected yet: the
  // connection the call opens starts with that bound.
  void SetCallDeadline(absl::Time deadline);

  // Waits at most `wait` (or the configured lock_timeout, if shorter) for a
  // row lock from the next statement on; zero: the configured wait again.
  // The executor shortens it for requests whose batch already waited a lock
  // out, so one row locked elsewhere costs them one lock timeout, not one
  // per retry.
  void SetLockWait(absl::Duration wait);

  // A trivial round trip.
  absl::Status Ping();

  // A round trip that also checks the identity recorded in the shard (it may
  // have changed under a running service, say after a failover to the wrong
  // database): FAILED_PRECONDITION if it is not (shard_index, shard_count).
  absl::Status CheckIdentity(int shard_count);

  // Applies pending migrations and records or checks the shard's identity,
  // in one transaction under an advisory lock (safe when several instances
  // start at once). FAILED_PRECONDITION if the shard was initialised as
  // another index or for another shard count.
  absl::Status Bootstrap(int shard_count);

  // Server version, recorded identity and schema version.
  absl::StatusOr<ShardDescription> Describe();

  // Creates a product; ALREADY_EXISTS PRODUCT_EXISTS if the id is taken.
  absl::StatusOr<ProductRecord> CreateProduct(const NewProduct& product);

  // Reads a product; NOT_FOUND PRODUCT_NOT_FOUND.
  absl::StatusOr<ProductRecord> GetProduct(int64_t product_id);

  // Available units of the known products among `product_ids`.
  absl::StatusOr<std::vector<AvailabilityRecord>> GetAvailability(
      const std::vector<int64_t>& product_ids);

  // Holds units (see the file comment). Replays an earlier reservation with
  // the same request id; REQUEST_ID_CONFLICT if its parameters differ;
  // OUT_OF_STOCK with the available count; PRODUCT_NOT_FOUND.
  absl::StatusOr<ReserveOutcome> Reserve(const ReserveCommand& command);

  // PENDING -> RELEASED and units back; RELEASED/EXPIRED again is a no-op;
  // PURCHASED is RESERVATION_NOT_PENDING.
  absl::StatusOr<ReservationRecord> Release(int64_t product_id,
                                            int64_t row_id);

  // PENDING -> PURCHASED unless expired by the database clock (then the hold
  // is expired on the spot and RESERVATION_NOT_PENDING returned); PURCHASED
  // again is a no-op; RELEASED/EXPIRED is RESERVATION_NOT_PENDING.
  absl::StatusOr<ReservationRecord> Commit(int64_t product_id, int64_t row_id);

  // Decides `ops` in one transaction (one round trip), in order, each with
  // exactly the outcome it would have had alone (see Reserve, Release,
  // Commit); one request's refusal never fails the others. Answers a prefix
  // of `ops` (at least the first): it stops after a request that frees
  // stock for a BACKORDER product's backorders when a later request concerns
  // that product, so that the fill runs before the rest is decided; send
  // the rest again. The outer status
  // is an error only when the whole batch failed (shard unreachable,
  // timeout): then none of it was applied, or, if the connection broke
  // while committing, the outcome is unknown (retry with the same request
  // ids: replays are safe).
  absl::StatusOr<std::vector<absl::StatusOr<ReserveOutcome>>> ApplyBatch(
      const std::vector<ReservationOp>& ops);

  // The fast path of a batch of reserves, one plain statement: each
  // product's requests are granted together, in one transaction, when its
  // stock covers them all and none of their request ids was used before;
  // everything else is left untouched. Returns per op the new reservation,
  // or nullopt for an op to decide with ApplyBatch: releases, commits, and
  // every request of a product that a request id used twice in the batch
  // names. Granting a product's requests together is what one-at-a-time
  // would do: each finds enough stock (releases only add to it).
  absl::StatusOr<std::vector<std::optional<ReservationRecord>>>
  GrantWholeProducts(const std::vector<ReservationOp>& ops);

  // Reads a reservation; NOT_FOUND RESERVATION_NOT_FOUND.
  absl::StatusOr<ReservationRecord> GetReservation(int64_t product_id,
                                                   int64_t row_id);

  // Changes a product's total (delta or new total) with the etag / session
  // rules of AdjustStockCommand, records the adjustment in the audit trail,
  // and lets backorders take the stock that became free. ETAG_MISMATCH,
  // STOCK_BELOW_COMMITTED, PRODUCT_NOT_FOUND.
  absl::StatusOr<ProductRecord> AdjustStock(const AdjustStockCommand& command);

  // Changes policy and/or low-stock threshold. ETAG_MISMATCH,
  // STOCK_BELOW_COMMITTED (STRICT while oversold), PRODUCT_NOT_FOUND.
  absl::StatusOr<ProductRecord> UpdateProduct(const ProductUpdate& update);

  // Up to `limit` reservations matching `filter` with row id > `after_id`,
  // by row id.
  absl::StatusOr<std::vector<ReservationRecord>> ListReservations(
      const ReservationFilter& filter, int64_t after_id, int limit);

  // Up to `limit` stock adjustments (of `product_id`, or all if 0) with id >
  // `after_id`, oldest first.
  absl::StatusOr<std::vector<StockAdjustmentRecord>> ListStockAdjustments(
      int64_t product_id, int64_t after_id, int limit);

  // Up to `limit` outbox events with id > `after_id`, by id.
  absl::StatusOr<std::vector<InventoryEventRecord>> ReadEvents(int64_t after_id,
                                                               int limit);

  // The id of the shard's newest outbox event (0 if none yet).
  absl::StatusOr<int64_t> LastEventId();

  // Recomputes every product's counters from its rows (reconciliation).
  absl::StatusOr<ShardVerification> VerifyCounters();

  // Expires up to `limit` due PENDING holds (SKIP LOCKED, so several
  // sweepers share the work) and returns their units. Returns how many.
  absl::StatusOr<int> ExpireDue(int limit);

  // Runs the backorder fill again on up to `limit` products of the late-fill
  // queue (migration 0011: the fill trigger queues a product when it had to
  // skip a backordered row another transaction held locked), oldest first.
  // Products and rows locked elsewhere are skipped, never waited for; a
  // skipped product goes to the end of the queue. A product whose fill gives
  // units gets a new version. A product whose counter backorders more than
  // its rows do leaves the queue (LateFill::dropped).
  absl::StatusOr<LateFill> FillLateBackorders(int limit);

 private:
  // Runs `fn` on the connection and turns exceptions into statuses.
  // Serialisation failures and deadlocks are retried. A session the server
  // closed while idle (say the shard restarted since the last call) is seen
  // before `fn` runs and replaced. A connection that breaks during `fn` is
  // re-opened and `fn` tried once more if it is `idempotent` (safe to run
  // twice: reads, and the group transaction, whose requests replay by
  // request id).
  template <typename Fn>
  auto Run(const char* what, Fn&& fn, bool idempotent = true) -> decltype(fn());

  absl::Status Translate(const char* what, const std::exception& e);

  // Drops the connection if the server has closed it since the last call.
  void DropIfClosedByServer();

  // FAILED_PRECONDITION SHARD_IDENTITY_MISMATCH naming this shard's place in
  // the list and the identity the database recorded.
  absl::Status IdentityMismatch(int recorded_index, int recorded_count,
                                int shard_count) const;

  int shard_index_;
  Dsn dsn_;
  ShardStoreOptions options_;
  struct Connection;  // wraps the pqxx connection (pqxx stays in the .cc)
  std::unique_ptr<Connection> conn_;
  // statement_timeout for a call due at `deadline`: the time left, rounded
  // up to a 250 ms step, at least one step, at most the configured bound.
  int64_t TimeoutMs(absl::Time deadline) const;
  // Sets the session's `name` (statement_timeout, lock_timeout) to `ms`
  // unless *in_force, what conn_ has now, already is that; records it there.
  void SetSessionTimeout(const char* name, int64_t ms, int64_t* in_force);
  // lock_timeout of every session: options_.lock_timeout, or 4/5 of the
  // statement bound if that is zero.
  int64_t ConfiguredLockTimeoutMs() const;
  // The lock_timeout of the next statement: the configured one, or
  // SetLockWait's if that is shorter.
  int64_t LockTimeoutMs() const;
  // SetLockWait's wait in ms; 0: the configured one.
  int64_t lock_wait_ms_ = 0;
  // The lock_timeout in force on conn_, in ms.
  int64_t lock_timeout_ms_ = 0;

  // The statement_timeout in force on conn_, in ms.
  int64_t statement_timeout_ms_ = 0;
  // The deadline of the current call (SetCallDeadline); none by default.
  absl::Time call_deadline_ = absl::InfiniteFuture();
};

// The statements every ShardStore session prepares, as (name, SQL), and the
// planner settings it runs them under (SET commands): for tests that check
// how PostgreSQL plans them.
std::vector<std::pair<std::string, std::string>> PreparedStatements();
std::string PlannerSettings();

}  // namespace inventory

#endif  // INVENTORY_STORE_SHARD_STORE_H_
