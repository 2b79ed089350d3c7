-- pgbench script: plain per-request reservation SQL, one transaction per
-- request, all clients on one product (the hot row).
--
-- This is the single-statement `reserve` of src/store/shard_store.cc as of
-- commit 1a3ff92 (RES_COLS expanded): the conditional counter UPDATE and the
-- reservation INSERT in one CTE, the per-request design before the group
-- transaction (migration 0004, inv_apply_batch) replaced it. It stays as a
-- reference point; bench/reserve_hot.sql is the transaction the service runs
-- today. Run with `pgbench -M prepared`, in autocommit (one statement = one
-- transaction). The statement's $1..$6 are the variables :pid, :qty,
-- :client_id, :rid, :ttl, :hold; pgbench makes each occurrence of a variable
-- its own parameter, so each carries the cast PostgreSQL infers for the
-- original $n.
--
-- Variables (pgbench -D): pid, the hot product.
\set qty 1
\set ttl 0
\set hold 900000
\set rid random(1, 9000000000000000000)
WITH prior AS (
  SELECT id, product_id, quantity, status, customer_id, request_id,
    requested_ttl_ms, inv_us(create_time) AS create_us,
    inv_us(expire_time) AS expire_us, inv_us(update_time) AS update_us,
    backordered_quantity
  FROM reservations WHERE request_id = :rid::text
), take AS (
  UPDATE products SET reserved_quantity = reserved_quantity + :qty::bigint,
    backordered_quantity = backordered_quantity + CASE
      WHEN stock_policy = 2 THEN least(:qty::bigint, greatest(0,
        reserved_quantity + :qty::bigint + purchased_quantity - total_quantity))
      ELSE 0 END,
    version = version + 1, update_time = now()
  WHERE product_id = :pid::bigint AND NOT EXISTS (SELECT 1 FROM prior)
    AND (stock_policy <> 1
         OR total_quantity - reserved_quantity - purchased_quantity >= :qty::bigint)
  RETURNING product_id, CASE WHEN stock_policy = 2 THEN least(:qty::bigint,
    greatest(0, reserved_quantity + purchased_quantity - total_quantity))
    ELSE 0 END AS backordered
), made AS (
  INSERT INTO reservations (product_id, quantity, status, customer_id,
    request_id, requested_ttl_ms, expire_time, backordered_quantity)
  SELECT product_id, :qty::bigint, 1, :client_id::text, :rid::text, :ttl::bigint,
    now() + make_interval(secs => :hold::double precision / 1000),
    backordered
  FROM take RETURNING id, product_id, quantity, status, customer_id, request_id,
    requested_ttl_ms, inv_us(create_time) AS create_us,
    inv_us(expire_time) AS expire_us, inv_us(update_time) AS update_us,
    backordered_quantity
) SELECT false, * FROM made UNION ALL SELECT true, * FROM prior;
