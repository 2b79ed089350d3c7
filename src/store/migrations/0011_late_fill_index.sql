-- 0011: the sweeper's list of BACKORDER products whose backorders could be
-- filled late.
--
-- The fill trigger (products_fill_backorders, 0002) skips a backordered row
-- another transaction holds locked and gives its units to the next unlocked
-- row; the skipped row waited for the product's next change. The sweeper now
-- looks for products whose stock could fill a backorder and runs the fill
-- again (ShardStore::FillLateBackorders). This index holds only BACKORDER
-- products with something backordered, so that look-up reads those alone.
-- STRICT products never change the indexed columns, so their updates stay
-- HOT as before.
--
-- Applied at start-up, in the migration's transaction: CREATE INDEX reads
-- every product row and blocks writes to products while it builds (about a
-- second per 5 million products on the bench machine, docs/operations.md).
-- An operator may build it beforehand with CREATE INDEX CONCURRENTLY under
-- this name; it is then kept.
CREATE INDEX IF NOT EXISTS products_backordered
  ON products (product_id)
  WHERE stock_policy = 2 AND backordered_quantity > 0;
