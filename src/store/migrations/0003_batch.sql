-- 0003: the group transaction. inv_apply_batch decides a batch of reserve /
-- release / commit requests in one call (one round trip, one commit), in
-- arrival order, with exactly the outcome each would have had alone.
--
-- Lock order, the same for every writer of the schema: first the reservation
-- rows the batch releases or commits (ascending id), then the products it
-- touches (ascending id), then (in triggers) the event sequence. The expiry
-- sweeper follows the same order (its reservation rows with SKIP LOCKED), so
-- batches on several connections and instances cannot deadlock.
--
-- kinds: 1 reserve, 2 release, 3 commit.
-- outcome: 1 granted (new PENDING row), 2 replayed (same request id, same
--   parameters), 3 out of stock (available = units left), 4 request id
--   conflict (row = the earlier reservation), 5 product not found,
--   6 reservation not found, 7 not pending (row = as it is now; a commit of
--   a hold found expired expires it first), 8 changed (released /
--   purchased), 9 already so (release of RELEASED/EXPIRED, commit of
--   PURCHASED; nothing changed).
CREATE FUNCTION inv_apply_batch(
    kinds smallint[], product_ids bigint[], row_ids bigint[],
    quantities bigint[], customers text[], request_ids text[],
    requested_ttls bigint[], hold_ttls bigint[])
  RETURNS TABLE (idx int, outcome smallint, available bigint,
                 res_id bigint, res_product bigint, res_quantity bigint,
                 res_status smallint, res_customer text, res_request text,
                 res_requested_ttl bigint, res_create bigint,
                 res_expire bigint, res_update bigint,
                 res_backordered bigint)
  LANGUAGE plpgsql AS $$
DECLARE
  n int := coalesce(array_length(kinds, 1), 0);
  i int;
  r reservations%ROWTYPE;
  p products%ROWTYPE;
  q bigint;
  taken bigint;
BEGIN
  -- Locks, in the schema's order.
  PERFORM 1 FROM reservations
    WHERE id = ANY (SELECT row_ids[k] FROM generate_subscripts(kinds, 1) k
                    WHERE kinds[k] IN (2, 3))
    ORDER BY id FOR UPDATE;
  PERFORM 1 FROM products WHERE product_id = ANY (product_ids)
    ORDER BY product_id FOR NO KEY UPDATE;

  FOR i IN 1 .. n LOOP
    idx := i;
    available := NULL;
    r := NULL;
    IF kinds[i] = 1 THEN
      q := quantities[i];
      SELECT * INTO r FROM reservations WHERE request_id = request_ids[i];
      IF FOUND THEN
        outcome := CASE WHEN r.product_id = product_ids[i]
                          AND r.quantity = q
                          AND r.customer_id = customers[i]
                          AND r.requested_ttl_ms = requested_ttls[i]
                        THEN 2 ELSE 4 END;
      ELSE
        -- The conditional counter update: never a count of rows.
        UPDATE products SET
            reserved_quantity = reserved_quantity + q,
            backordered_quantity = backordered_quantity + CASE
              WHEN stock_policy = 2 THEN least(q, greatest(0,
                reserved_quantity + q + purchased_quantity - total_quantity))
              ELSE 0 END,
            version = version + 1, update_time = now()
          WHERE product_id = product_ids[i]
            AND (stock_policy <> 1
                 OR total_quantity - reserved_quantity - purchased_quantity >= q)
          RETURNING CASE WHEN stock_policy = 2 THEN least(q, greatest(0,
              reserved_quantity + purchased_quantity - total_quantity))
            ELSE 0 END INTO taken;
        IF NOT FOUND THEN
          SELECT * INTO p FROM products WHERE product_id = product_ids[i];
          IF FOUND THEN
            outcome := 3;
            available := greatest(0, p.total_quantity - p.reserved_quantity
                                     - p.purchased_quantity);
          ELSE
            outcome := 5;
          END IF;
        ELSE
          INSERT INTO reservations (product_id, quantity, status, customer_id,
              request_id, requested_ttl_ms, expire_time, backordered_quantity)
            VALUES (product_ids[i], q, 1, customers[i], request_ids[i],
                    requested_ttls[i],
                    now() + make_interval(secs => hold_ttls[i]::double precision
                                                  / 1000),
                    taken)
            ON CONFLICT (request_id) DO NOTHING
            RETURNING * INTO r;
          IF FOUND THEN
            outcome := 1;
          ELSE
            -- A concurrent transaction committed this request id first:
            -- give the units back and answer as a replay of its row.
            UPDATE products SET
                reserved_quantity = reserved_quantity - q,
                backordered_quantity = backordered_quantity - taken,
                version = version + 1, update_time = now()
              WHERE product_id = product_ids[i];
            SELECT * INTO r FROM reservations
              WHERE request_id = request_ids[i];
            outcome := CASE WHEN r.product_id = product_ids[i]
                              AND r.quantity = q
                              AND r.customer_id = customers[i]
                              AND r.requested_ttl_ms = requested_ttls[i]
                            THEN 2 ELSE 4 END;
          END IF;
        END IF;
      END IF;
    ELSE
      SELECT * INTO r FROM reservations
        WHERE id = row_ids[i] AND product_id = product_ids[i];
      IF NOT FOUND THEN
        outcome := 6;
      ELSIF kinds[i] = 2 THEN                          -- release
        IF r.status = 1 THEN
          UPDATE reservations SET status = 3, update_time = now()
            WHERE id = r.id RETURNING * INTO r;
          UPDATE products SET
              reserved_quantity = reserved_quantity - r.quantity,
              backordered_quantity = backordered_quantity
                                     - r.backordered_quantity,
              version = version + 1, update_time = now()
            WHERE product_id = r.product_id;
          outcome := 8;
        ELSIF r.status IN (3, 4) THEN
          outcome := 9;
        ELSE
          outcome := 7;
        END IF;
      ELSE                                             -- commit
        IF r.status = 1 AND r.expire_time <= now() THEN
          -- Expired by the database clock: expire it now, refuse.
          UPDATE reservations SET status = 4, update_time = now()
            WHERE id = r.id RETURNING * INTO r;
          UPDATE products SET
              reserved_quantity = reserved_quantity - r.quantity,
              backordered_quantity = backordered_quantity
                                     - r.backordered_quantity,
              version = version + 1, update_time = now()
            WHERE product_id = r.product_id;
          outcome := 7;
        ELSIF r.status = 1 THEN
          UPDATE reservations SET status = 2, update_time = now()
            WHERE id = r.id RETURNING * INTO r;
          UPDATE products SET
              reserved_quantity = reserved_quantity - r.quantity,
              purchased_quantity = purchased_quantity + r.quantity,
              version = version + 1, update_time = now()
            WHERE product_id = r.product_id;
          outcome := 8;
        ELSIF r.status = 2 THEN
          outcome := 9;
        ELSE
          outcome := 7;
        END IF;
      END IF;
    END IF;
    res_id := r.id;
    res_product := r.product_id;
    res_quantity := r.quantity;
    res_status := r.status;
    res_customer := r.customer_id;
    res_request := r.request_id;
    res_requested_ttl := r.requested_ttl_ms;
    res_create := inv_us(r.create_time);
    res_expire := inv_us(r.expire_time);
    res_update := inv_us(r.update_time);
    res_backordered := r.backordered_quantity;
    RETURN NEXT;
  END LOOP;
END $$;
