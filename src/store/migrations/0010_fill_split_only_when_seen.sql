-- 0010: inv_apply_batch (0008) again, with one change; everything else is
-- as described in 0004, 0007 and 0008.
--
-- 0008 ends the statement right after a request that lets the backorder
-- fill run, so that the later requests of the batch see the fill. Only a
-- later request of the same product, or a replay of a request id (whose row
-- may be of that product), can see it. Now the statement ends there only if
-- such a request follows; otherwise the product is written with the
-- batch's other changes and the fill trigger runs then, on the same
-- counters one at a time would have left after that request. On a cart of
-- 16 BACKORDER products whose releases fill backorders this took back most
-- of what 0008 cost (docs/benchmarks.md).
CREATE OR REPLACE FUNCTION inv_apply_batch(
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
  j int;
  k int;
  m int;
  q bigint;
  av bigint;
  bo bigint;
  -- (1) the locked reservation rows and their status as the batch goes
  rows_locked reservations[];
  row_ids_locked bigint[];
  row_status smallint[];
  row_expired boolean[];
  -- (2) the locked products, their counters and the batch's net change
  pids bigint[];
  p_total bigint[];
  p_res bigint[];
  p_pur bigint[];
  p_pol smallint[];
  p_bo bigint[];
  d_res bigint[];
  d_pur bigint[];
  d_bo bigint[];
  -- (3) earlier reservations of the batch's request ids
  prior_rows reservations[];
  prior_rids text[];
  -- per request: outcome, available (out of stock), backordered units,
  -- the request whose row it answers with (in-batch duplicate), the locked
  -- row it concerns (release / commit) and that row's status after it (for
  -- a replay or conflict of a row the batch also releases or commits: that
  -- row's status when the replay is decided)
  o_out smallint[] := array_fill(0::smallint, ARRAY[n]);
  o_avail bigint[] := array_fill(NULL::bigint, ARRAY[n]);
  o_bo bigint[] := array_fill(0::bigint, ARRAY[n]);
  o_dup int[] := array_fill(0, ARRAY[n]);
  o_row int[] := array_fill(0, ARRAY[n]);
  o_status smallint[] := array_fill(0::smallint, ARRAY[n]);
  granted int[] := '{}';
  granted_rids text[] := '{}';
  new_rows reservations[];
  new_rids text[];
  changed_ids bigint[] := '{}';
  changed_status smallint[] := '{}';
  changed_pids bigint[] := '{}';
  wanted_rows bigint[];
  wanted_rids text[];
  -- the new rows' ids, taken in arrival order
  o_id bigint[] := array_fill(NULL::bigint, ARRAY[n]);
  id_seq regclass;
  -- the product (index into pids) whose counters request i changed; the
  -- requests decided (a prefix) and the product that ended it, if any
  touched int;
  decided int := n;
  stop_k int := 0;
  -- products a request left in the trigger's condition without ending the
  -- batch (no later request sees them): written, so their fill runs
  fill_k int[] := '{}';
  r reservations;
BEGIN
  -- Plain arrays, so every look-up below is an index scan (and look-ups
  -- with nothing to find are skipped).
  FOR i IN 1 .. n LOOP
    IF kinds[i] = 1 THEN
      wanted_rids := wanted_rids || request_ids[i];
    ELSE
      wanted_rows := wanted_rows || row_ids[i];
    END IF;
  END LOOP;
  -- (1)
  IF wanted_rows IS NOT NULL THEN
    SELECT array_agg(x::reservations ORDER BY x.id),
           array_agg(x.id ORDER BY x.id), array_agg(x.status ORDER BY x.id),
           array_agg(x.expire_time <= now() ORDER BY x.id)
      INTO rows_locked, row_ids_locked, row_status, row_expired
      FROM (SELECT * FROM reservations
            WHERE id = ANY (wanted_rows)
            ORDER BY id FOR UPDATE) x;
  END IF;
  -- (2)
  SELECT array_agg(y.product_id ORDER BY y.product_id),
         array_agg(y.total_quantity ORDER BY y.product_id),
         array_agg(y.reserved_quantity ORDER BY y.product_id),
         array_agg(y.purchased_quantity ORDER BY y.product_id),
         array_agg(y.stock_policy ORDER BY y.product_id),
         array_agg(y.backordered_quantity ORDER BY y.product_id)
    INTO pids, p_total, p_res, p_pur, p_pol, p_bo
    FROM (SELECT * FROM products WHERE product_id = ANY (product_ids)
          ORDER BY product_id FOR NO KEY UPDATE) y;
  pids := coalesce(pids, '{}');
  d_res := array_fill(0::bigint, ARRAY[coalesce(array_length(pids, 1), 0)]);
  d_pur := d_res;
  d_bo := d_res;
  -- (3)
  IF wanted_rids IS NOT NULL THEN
    SELECT array_agg(z), array_agg(z.request_id) INTO prior_rows, prior_rids
      FROM reservations z
      WHERE z.request_id = ANY (wanted_rids);
  END IF;
  -- (4)
  FOR i IN 1 .. n LOOP
    touched := 0;
    IF kinds[i] = 1 THEN
      q := quantities[i];
      j := array_position(prior_rids, request_ids[i]);
      IF j IS NOT NULL THEN
        r := prior_rows[j];
        -- A release or commit earlier in this batch may have changed that
        -- row: answer with its status at this point, as one at a time would.
        m := array_position(row_ids_locked, r.id);
        IF m IS NOT NULL THEN
          o_status[i] := row_status[m];
        END IF;
        o_out[i] := CASE WHEN r.product_id = product_ids[i]
                           AND r.quantity = q
                           AND r.customer_id = customers[i]
                           AND r.requested_ttl_ms = requested_ttls[i]
                         THEN 2 ELSE 4 END;
        CONTINUE;
      END IF;
      j := array_position(granted_rids, request_ids[i]);
      IF j IS NOT NULL THEN
        j := granted[j];
        o_dup[i] := j;
        o_out[i] := CASE WHEN product_ids[j] = product_ids[i]
                           AND quantities[j] = q
                           AND customers[j] = customers[i]
                           AND requested_ttls[j] = requested_ttls[i]
                         THEN 2 ELSE 4 END;
        CONTINUE;
      END IF;
      k := array_position(pids, product_ids[i]);
      IF k IS NULL THEN
        o_out[i] := 5;
        CONTINUE;
      END IF;
      -- The decision: enough stock left after everything decided before.
      av := p_total[k] - (p_res[k] + d_res[k]) - (p_pur[k] + d_pur[k]);
      IF p_pol[k] = 1 AND av < q THEN
        o_out[i] := 3;
        o_avail[i] := greatest(0, av);
        CONTINUE;
      END IF;
      bo := CASE WHEN p_pol[k] = 2 THEN least(q, greatest(0, q - av)) ELSE 0 END;
      d_res[k] := d_res[k] + q;
      d_bo[k] := d_bo[k] + bo;
      o_bo[i] := bo;
      o_out[i] := 1;
      IF id_seq IS NULL THEN
        id_seq := pg_get_serial_sequence('reservations', 'id')::regclass;
      END IF;
      o_id[i] := nextval(id_seq);
      touched := k;
      granted := granted || i;
      granted_rids := granted_rids || request_ids[i];
    ELSE
      j := array_position(row_ids_locked, row_ids[i]);
      IF j IS NULL OR rows_locked[j].product_id <> product_ids[i] THEN
        o_out[i] := 6;
        CONTINUE;
      END IF;
      r := rows_locked[j];
      o_row[i] := j;
      k := array_position(pids, r.product_id);
      IF kinds[i] = 2 THEN                               -- release
        IF row_status[j] = 1 THEN
          row_status[j] := 3;
          d_res[k] := d_res[k] - r.quantity;
          d_bo[k] := d_bo[k] - r.backordered_quantity;
          o_out[i] := 8;
          touched := k;
        ELSIF row_status[j] IN (3, 4) THEN
          o_out[i] := 9;
        ELSE
          o_out[i] := 7;
        END IF;
      ELSE                                               -- commit
        IF row_status[j] = 1 AND row_expired[j] THEN
          row_status[j] := 4;  -- expired by the database clock: refuse
          d_res[k] := d_res[k] - r.quantity;
          d_bo[k] := d_bo[k] - r.backordered_quantity;
          o_out[i] := 7;
          touched := k;
        ELSIF row_status[j] = 1 THEN
          row_status[j] := 2;
          d_res[k] := d_res[k] - r.quantity;
          d_pur[k] := d_pur[k] + r.quantity;
          o_out[i] := 8;
          touched := k;
        ELSIF row_status[j] = 2 THEN
          o_out[i] := 9;
        ELSE
          o_out[i] := 7;
        END IF;
      END IF;
      o_status[i] := row_status[j];
    END IF;
    -- The trigger's condition: one request at a time, the fill would run
    -- now and the next requests would see it. Stop here.
    IF touched > 0 AND p_pol[touched] = 2
       AND p_bo[touched] + d_bo[touched]
           > greatest(0, p_res[touched] + d_res[touched]
                         + p_pur[touched] + d_pur[touched] - p_total[touched])
    THEN
      -- Only a later request of the batch on this product, or a replay,
      -- can see what the fill changes; without one, the fill can run when
      -- the batch writes the product, as its last change.
      IF i < n AND (pids[touched] = ANY (product_ids[i + 1 : n])
                    OR request_ids[i + 1 : n]
                       && (coalesce(prior_rids, '{}') || granted_rids)) THEN
        decided := i;
        stop_k := touched;
        EXIT;
      END IF;
      fill_k := fill_k || touched;
    END IF;
  END LOOP;

  -- (5)
  IF array_length(granted, 1) > 0 THEN
    WITH ins AS (
      INSERT INTO reservations (id, product_id, quantity, status,
          customer_id, request_id, requested_ttl_ms, expire_time,
          backordered_quantity)
        OVERRIDING SYSTEM VALUE
        SELECT o_id[g], product_ids[g], quantities[g], 1, customers[g], request_ids[g],
               requested_ttls[g],
               now() + make_interval(secs => hold_ttls[g]::double precision
                                             / 1000),
               o_bo[g]
        -- In request-id order: two batches inserting the same request ids
        -- wait for each other in the same order, never in a cycle.
        FROM unnest(granted) AS t(g) ORDER BY request_ids[g]
        ON CONFLICT (request_id) DO NOTHING
        RETURNING *)
    SELECT array_agg(ins), array_agg(ins.request_id) INTO new_rows, new_rids
      FROM ins;
    IF coalesce(array_length(new_rows, 1), 0) <> array_length(granted, 1) THEN
      RAISE EXCEPTION 'a request id of this batch was taken concurrently'
        USING ERRCODE = 'serialization_failure';
    END IF;
  END IF;

  -- (6)
  FOR j IN 1 .. coalesce(array_length(row_ids_locked, 1), 0) LOOP
    IF row_status[j] <> rows_locked[j].status THEN
      changed_ids := changed_ids || row_ids_locked[j];
      changed_status := changed_status || row_status[j];
    END IF;
  END LOOP;
  IF array_length(changed_ids, 1) > 0 THEN
    UPDATE reservations
      SET status = changed_status[array_position(changed_ids, id)],
          update_time = now()
      WHERE id = ANY (changed_ids);
  END IF;

  -- (7)
  FOR k IN 1 .. coalesce(array_length(pids, 1), 0) LOOP
    -- The product that ended the batch, and those of fill_k, are updated
    -- even if their counters came back to where they were, so the fill
    -- runs as it would have.
    IF d_res[k] <> 0 OR d_pur[k] <> 0 OR d_bo[k] <> 0 OR k = stop_k
       OR k = ANY (fill_k) THEN
      changed_pids := changed_pids || pids[k];
    END IF;
  END LOOP;
  IF array_length(changed_pids, 1) > 0 THEN
    UPDATE products SET
        reserved_quantity = reserved_quantity
                            + d_res[array_position(pids, product_id)],
        purchased_quantity = purchased_quantity
                             + d_pur[array_position(pids, product_id)],
        backordered_quantity = backordered_quantity
                               + d_bo[array_position(pids, product_id)],
        version = version + 1, update_time = now()
      WHERE product_id = ANY (changed_pids);
  END IF;

  -- The answers of the decided requests, in request order.
  FOR i IN 1 .. decided LOOP
    idx := i;
    outcome := o_out[i];
    available := o_avail[i];
    r := NULL;
    IF kinds[i] = 1 THEN
      IF o_out[i] = 1 THEN
        r := new_rows[array_position(new_rids, request_ids[i])];
      ELSIF o_dup[i] > 0 THEN
        r := new_rows[array_position(new_rids, request_ids[o_dup[i]])];
      ELSIF o_out[i] IN (2, 4) THEN
        r := prior_rows[array_position(prior_rids, request_ids[i])];
        IF o_status[i] <> 0 AND o_status[i] <> r.status THEN
          r.status := o_status[i];
          r.update_time := now();
        END IF;
      END IF;
    ELSIF o_row[i] > 0 THEN
      r := rows_locked[o_row[i]];
      r.status := o_status[i];
      IF o_out[i] IN (7, 8) AND o_status[i] <> rows_locked[o_row[i]].status THEN
        r.update_time := now();
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
