-- 0011: backorder fills the fill trigger had to skip are queued, and the
-- sweeper runs them again (ShardStore::FillLateBackorders).
--
-- The fill trigger (products_fill_backorders, 0002) skips a backordered row
-- that another transaction holds locked and gives its units to the next
-- unlocked row; with no unlocked row left, the units wait. Nothing retried
-- them before the product's next change. Now a fill that ends with units it
-- could not give records its product in late_fills; each sweep takes the
-- oldest entries, runs the fill again on them, and an entry whose fill is
-- skipped again goes back to the end of the queue. The trigger writes the
-- queue only when it skipped rows, so the hot path pays nothing for it.
CREATE TABLE late_fills (
  product_id  bigint PRIMARY KEY,
  queued_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX late_fills_queued ON late_fills (queued_at, product_id);

-- 0002's body; the only change is the INSERT at the end.
CREATE OR REPLACE FUNCTION inv_fill_backorders() RETURNS trigger
LANGUAGE plpgsql AS $$
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
  IF filled < free THEN  -- rows skipped: the sweeper tries again
    INSERT INTO late_fills (product_id) VALUES (NEW.product_id)
      ON CONFLICT (product_id) DO NOTHING;
  END IF;
  RETURN NULL;
END $$;

-- Fills that older versions skipped: one read of products, at this
-- migration only, without blocking writes (0.43 s for 5 million products on
-- the bench machine, docs/operations.md). The service's sessions turn
-- sequential scans off; this one read is one (until the migrations commit).
-- Fills skipped by other sessions while the migrations run still use the
-- old function and are not queued: the product's next change fills them.
SET LOCAL enable_seqscan = on;
INSERT INTO late_fills (product_id)
  SELECT product_id FROM products
  WHERE stock_policy = 2
    AND backordered_quantity > greatest(0, reserved_quantity
                                           + purchased_quantity
                                           - total_quantity)
  ON CONFLICT (product_id) DO NOTHING;
