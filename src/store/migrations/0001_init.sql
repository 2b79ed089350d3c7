-- 0001: the shard's identity, products with maintained counters, and
-- reservations (the join table of the original design).

-- Which position of the shard list this database is, and of how many.
-- Recorded on first start; every later start must present the same.
CREATE TABLE shard_identity (
  singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  shard_index  integer NOT NULL CHECK (shard_index >= 0),
  shard_count  integer NOT NULL CHECK (shard_count > shard_index),
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Microseconds since the epoch, as the service reads every timestamp.
CREATE FUNCTION inv_us(t timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT (extract(epoch FROM t) * 1000000)::bigint $$;

-- stock_policy: 1 = STRICT, 2 = BACKORDER (the proto enum numbers).
CREATE TABLE products (
  product_id           bigint PRIMARY KEY CHECK (product_id > 0),
  total_quantity       bigint NOT NULL CHECK (total_quantity >= 0),
  reserved_quantity    bigint NOT NULL DEFAULT 0 CHECK (reserved_quantity >= 0),
  purchased_quantity   bigint NOT NULL DEFAULT 0 CHECK (purchased_quantity >= 0),
  stock_policy         smallint NOT NULL DEFAULT 1 CHECK (stock_policy IN (1, 2)),
  low_stock_threshold  bigint NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
  version              bigint NOT NULL DEFAULT 1,
  create_time          timestamptz NOT NULL DEFAULT now(),
  update_time          timestamptz NOT NULL DEFAULT now(),
  -- Last line of defence: even a bug in the service cannot commit an
  -- oversold STRICT product.
  CONSTRAINT strict_never_oversold
    CHECK (stock_policy <> 1 OR reserved_quantity + purchased_quantity <= total_quantity)
);

-- status: 1 = PENDING, 2 = PURCHASED, 3 = RELEASED, 4 = EXPIRED.
-- No foreign key to products: the row lock of a hot product must not be
-- shared by every insert; Reserve() proves the product exists by updating it
-- in the same statement.
CREATE TABLE reservations (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  product_id        bigint NOT NULL,
  quantity          bigint NOT NULL CHECK (quantity > 0),
  status            smallint NOT NULL CHECK (status IN (1, 2, 3, 4)),
  customer_id       text NOT NULL,
  request_id        text NOT NULL,
  requested_ttl_ms  bigint NOT NULL DEFAULT 0,
  create_time       timestamptz NOT NULL DEFAULT now(),
  expire_time       timestamptz NOT NULL,
  update_time       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT reservations_request_id_unique UNIQUE (request_id)
);

-- The sweeper's work list: only PENDING rows, oldest expiry first.
CREATE INDEX reservations_pending_expiry
  ON reservations (expire_time) WHERE status = 1;
CREATE INDEX reservations_product_status
  ON reservations (product_id, status);
