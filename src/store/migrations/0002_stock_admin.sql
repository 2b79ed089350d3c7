-- 0002: stock administration — backorders, operator sessions, the audit
-- trail of stock adjustments, and the outbox of low-stock events.

-- Units held or sold beyond stock (BACKORDER products). The service keeps
-- products.backordered_quantity = sum of its PENDING/PURCHASED rows'
-- backordered_quantity; the fill trigger below gives backorders the stock
-- that becomes free, oldest first.
ALTER TABLE products
  ADD COLUMN backordered_quantity bigint NOT NULL DEFAULT 0
    CHECK (backordered_quantity >= 0),
  -- The operator session that made the last stock adjustment, and when
  -- (AdjustStock's session window).
  ADD COLUMN last_session_id text,
  ADD COLUMN last_session_time timestamptz;

ALTER TABLE reservations
  ADD COLUMN backordered_quantity bigint NOT NULL DEFAULT 0
    CHECK (backordered_quantity >= 0 AND backordered_quantity <= quantity);

CREATE INDEX reservations_backordered
  ON reservations (product_id, create_time, id) WHERE backordered_quantity > 0;

-- Audit trail: every stock adjustment, who, why, before/after, when.
-- reason: the StockAdjustmentReason enum number.
CREATE TABLE stock_adjustments (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  product_id    bigint NOT NULL,
  reason        smallint NOT NULL CHECK (reason BETWEEN 1 AND 6),
  total_before  bigint NOT NULL,
  total_after   bigint NOT NULL,
  actor         text NOT NULL,
  session_id    text NOT NULL DEFAULT '',
  note          text NOT NULL DEFAULT '',
  create_time   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_adjustments_product ON stock_adjustments (product_id, id);

-- Outbox of inventory events. Ids come from inventory_event_seq, whose row
-- lock is held until the writing transaction commits, so ids become visible
-- in increasing order and a reader that resumes after id N misses nothing.
-- event_type: 1 LOW_STOCK, 2 OUT_OF_STOCK, 3 RESTOCKED.
CREATE TABLE inventory_events (
  id                   bigint PRIMARY KEY,
  product_id           bigint NOT NULL,
  event_type           smallint NOT NULL CHECK (event_type IN (1, 2, 3)),
  available_quantity   bigint NOT NULL,
  low_stock_threshold  bigint NOT NULL,
  create_time          timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE inventory_event_seq (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_id    bigint NOT NULL
);
INSERT INTO inventory_event_seq (last_id) VALUES (0);

CREATE FUNCTION inv_available(total bigint, reserved bigint, purchased bigint)
  RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT greatest(0, total - reserved - purchased) $$;

-- Writes the event a product change causes, in the same transaction.
CREATE FUNCTION inv_emit_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_av bigint := inv_available(OLD.total_quantity, OLD.reserved_quantity,
                                 OLD.purchased_quantity);
  new_av bigint := inv_available(NEW.total_quantity, NEW.reserved_quantity,
                                 NEW.purchased_quantity);
  kind smallint;
  event_id bigint;
BEGIN
  IF new_av = 0 AND old_av > 0 THEN
    kind := 2;
  ELSIF new_av <= NEW.low_stock_threshold AND new_av > 0
        AND old_av > OLD.low_stock_threshold THEN
    kind := 1;
  ELSIF new_av > NEW.low_stock_threshold
        AND old_av <= OLD.low_stock_threshold THEN
    kind := 3;
  ELSE
    RETURN NULL;
  END IF;
  UPDATE inventory_event_seq SET last_id = last_id + 1
    RETURNING last_id INTO event_id;
  INSERT INTO inventory_events
    (id, product_id, event_type, available_quantity, low_stock_threshold)
    VALUES (event_id, NEW.product_id, kind, new_av, NEW.low_stock_threshold);
  RETURN NULL;
END $$;

-- Fires only when "above threshold" or "zero" changes, so an ordinary
-- reservation never runs PL/pgSQL.
CREATE TRIGGER products_emit_event AFTER UPDATE ON products FOR EACH ROW
  WHEN ((inv_available(OLD.total_quantity, OLD.reserved_quantity,
                       OLD.purchased_quantity) > OLD.low_stock_threshold)
        IS DISTINCT FROM
        (inv_available(NEW.total_quantity, NEW.reserved_quantity,
                       NEW.purchased_quantity) > NEW.low_stock_threshold)
     OR (inv_available(OLD.total_quantity, OLD.reserved_quantity,
                       OLD.purchased_quantity) = 0)
        IS DISTINCT FROM
        (inv_available(NEW.total_quantity, NEW.reserved_quantity,
                       NEW.purchased_quantity) = 0))
  EXECUTE FUNCTION inv_emit_event();

-- Gives stock that became free to backorders, oldest first. Rows locked by
-- another transaction are skipped (no deadlock with a concurrent release);
-- what stays unfilled is filled by the next change of the product.
CREATE FUNCTION inv_fill_backorders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  free bigint := NEW.backordered_quantity
      - greatest(0, NEW.reserved_quantity + NEW.purchased_quantity
                    - NEW.total_quantity);
  filled bigint := 0;
  take bigint;
  r record;
BEGIN
  FOR r IN
    SELECT id, backordered_quantity FROM reservations
    WHERE product_id = NEW.product_id AND backordered_quantity > 0
      AND status IN (1, 2)
    ORDER BY create_time, id
    FOR UPDATE SKIP LOCKED
  LOOP
    EXIT WHEN filled >= free;
    take := least(free - filled, r.backordered_quantity);
    UPDATE reservations SET backordered_quantity = backordered_quantity - take
      WHERE id = r.id;
    filled := filled + take;
  END LOOP;
  IF filled > 0 THEN
    UPDATE products SET backordered_quantity = backordered_quantity - filled
      WHERE product_id = NEW.product_id;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER products_fill_backorders AFTER UPDATE ON products FOR EACH ROW
  WHEN (NEW.stock_policy = 2 AND NEW.backordered_quantity >
        greatest(0, NEW.reserved_quantity + NEW.purchased_quantity
                    - NEW.total_quantity))
  EXECUTE FUNCTION inv_fill_backorders();
