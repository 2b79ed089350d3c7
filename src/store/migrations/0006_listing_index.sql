-- 0006: the index of a product's reservations in id order. Sessions use
-- generic plans (plan_cache_mode = force_generic_plan), so the listing of one
-- product's reservations (`list_product_reservations`: product_id = $1 AND
-- id > $3 ORDER BY id LIMIT $4) gets one plan for every product. With
-- (product_id, status) that plan read a product's whole history and sorted it
-- on every page, which for a hot product is millions of rows; with
-- (product_id, id) each page reads only its own rows. Still one index: the
-- (product_id, status) one served nothing else.
--
-- Applied at start-up, in the migration's transaction: CREATE INDEX blocks
-- writes to reservations while it builds (seconds per million rows). An
-- operator may build it beforehand with CREATE INDEX CONCURRENTLY
-- (docs/operations.md); it is then kept.
CREATE INDEX IF NOT EXISTS reservations_product_id
  ON reservations (product_id, id);
DROP INDEX IF EXISTS reservations_product_status;
