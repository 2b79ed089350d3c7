-- 0009: the database's guard for BACKORDER products, as strict_never_oversold
-- (0001) is for STRICT ones. The units a product covers from stock (held or
-- sold, less those backordered) never exceed its total, and it never
-- backorders more units than it holds or sold. The service keeps both at
-- every step (a reservation backorders what the stock does not cover, the
-- fill trigger gives backorders only free stock, the floor of AdjustStock is
-- the covered units); this makes a bug in any of them fail its transaction
-- instead of committing an oversold product.
--
-- Rows that already break it (possible on a shard that ran versions before
-- AdjustStock had a floor for BACKORDER products) stop the migration before
-- it takes any lock beyond a read, with their ids in the error; the shard
-- is then not served until an operator restocks them (AdjustStock through a
-- running older version, or SQL). Otherwise the constraint is added, which
-- reads every product row again under the table's exclusive lock (held
-- until the migrations commit: a NOT VALID constraint validated in the same
-- transaction would hold it as long).
DO $$
DECLARE
  bad text;
BEGIN
  SELECT string_agg(product_id::text, ', ') INTO bad
    FROM (SELECT product_id FROM products
          WHERE stock_policy = 2
            AND (reserved_quantity + purchased_quantity - backordered_quantity
                   > total_quantity
                 OR backordered_quantity
                      > reserved_quantity + purchased_quantity)
          ORDER BY product_id LIMIT 20) x;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'migration 0009: BACKORDER product(s) % cover more units '
      'from stock than their total, or backorder more than they hold; '
      'restock them, then start this version again', bad;
  END IF;
END $$;
ALTER TABLE products ADD CONSTRAINT backorder_never_oversold
  CHECK (stock_policy <> 2
         OR (reserved_quantity + purchased_quantity - backordered_quantity
               <= total_quantity
             AND backordered_quantity
                   <= reserved_quantity + purchased_quantity));
