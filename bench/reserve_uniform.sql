-- pgbench script: the service's reservation transaction for one request, one
-- transaction per request, products picked uniformly from one shard's share of
-- the data set.
--
-- KEEP IN SYNC with the "apply_batch" statement and ShardStore::ApplyBatch in
-- src/store/shard_store.cc. The service decides every reserve (alone, or
-- coalesced with concurrent ones) with one prepared
--   SELECT * FROM inv_apply_batch($1::smallint[], ..., $8::bigint[])
-- in autocommit. Here each call carries a batch of one reserve (kind 1), as
-- the service sends when nothing else is waiting: the per-request cost of
-- the same transaction without gRPC, routing or coalescing. Arguments:
-- kinds, product ids, reservation row ids (0: none), quantities, customer
-- ids, request ids (random, unique in practice), requested hold ms (0: none),
-- hold ms (the default 15 min).
--
-- Variables (pgbench -D): base, the first product id on the shard;
-- stride, the shard count; n, the shard's number of products.
\set pid :base + :stride * random(0, :n - 1)
\set rid random(1, 9000000000000000000)
SELECT * FROM inv_apply_batch(ARRAY[1]::smallint[], ARRAY[:pid]::bigint[],
  ARRAY[0]::bigint[], ARRAY[1]::bigint[], ARRAY[:client_id::text],
  ARRAY[:rid::text], ARRAY[0]::bigint[], ARRAY[900000]::bigint[]);
