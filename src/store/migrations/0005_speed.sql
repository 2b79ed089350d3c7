-- 0005: speed. Measured with bench/run.sh and perf (docs/benchmarks.md):
--  * inv_us() was declared IMMUTABLE over a STABLE expression, so PostgreSQL
--    never inlined it and planned it anew at every call: it is STABLE now.
--  * the products triggers' WHEN clauses called inv_available(), a function
--    call per evaluation on every product update: now plain arithmetic.

ALTER FUNCTION inv_us(timestamptz) STABLE;

DROP TRIGGER products_emit_event ON products;
CREATE TRIGGER products_emit_event AFTER UPDATE ON products FOR EACH ROW
  WHEN ((greatest(0, OLD.total_quantity - OLD.reserved_quantity
                     - OLD.purchased_quantity) > OLD.low_stock_threshold)
        IS DISTINCT FROM
        (greatest(0, NEW.total_quantity - NEW.reserved_quantity
                     - NEW.purchased_quantity) > NEW.low_stock_threshold)
     OR (OLD.total_quantity - OLD.reserved_quantity
         - OLD.purchased_quantity <= 0)
        IS DISTINCT FROM
        (NEW.total_quantity - NEW.reserved_quantity
         - NEW.purchased_quantity <= 0))
  EXECUTE FUNCTION inv_emit_event();
