-- 0009: the database's guard for BACKORDER products, as strict_never_oversold
-- (0001) is for STRICT ones. The units a product covers from stock (held or
-- sold, less those backordered) never exceed its total, and it never
-- backorders more units than it holds or sold. The service keeps both at
-- every step (a reservation backorders what the stock does not cover, the
-- fill trigger gives backorders only free stock, the floor of AdjustStock is
-- the covered units); this makes a bug in any of them fail its transaction
-- instead of committing an oversold product. Adding it checks every existing
-- row: a shard that already holds such a product refuses the migration, and
-- the service does not start until an operator has looked at it.
ALTER TABLE products ADD CONSTRAINT backorder_never_oversold
  CHECK (stock_policy <> 2
         OR (reserved_quantity + purchased_quantity - backordered_quantity
               <= total_quantity
             AND backordered_quantity
                   <= reserved_quantity + purchased_quantity));
