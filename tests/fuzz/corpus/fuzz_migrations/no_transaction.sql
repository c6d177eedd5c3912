-- What the runner and lint treat specially: statements that cannot run in a transaction,
-- a file with its own transaction control, allow comments, dollar quoting.
-- deployctl:allow drop-column
ALTER TABLE "User" DROP COLUMN "legacy_name";
CREATE INDEX CONCURRENTLY IF NOT EXISTS "Order_created_idx" ON public."Order" ("createdAt");
DO $body$
BEGIN
    UPDATE "Order" SET status = 'open' WHERE status IS NULL; -- a ; inside
END
$body$;
BEGIN;
ALTER TABLE "Order" ALTER COLUMN status SET NOT NULL;
COMMIT;
VACUUM ANALYZE "Order";
