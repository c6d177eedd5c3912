-- Scenario 2, rename `batch` to `batch_number` by expand/contract. Step 1 (expand): the new
-- column, filled from the old one; a trigger keeps both in step while the old application
-- version (writing `batch`) and the new one (writing `batch_number`) run side by side.

-- AlterTable
ALTER TABLE "inventory_items" ADD COLUMN "batch_number" TEXT;

-- Keep the two columns in step
CREATE FUNCTION "inventory_items_sync_batch"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW."batch_number" := COALESCE(NEW."batch_number", NEW."batch");
        NEW."batch" := COALESCE(NEW."batch", NEW."batch_number");
    ELSIF NEW."batch" IS DISTINCT FROM OLD."batch" AND NEW."batch_number" IS NOT DISTINCT FROM OLD."batch_number" THEN
        NEW."batch_number" := NEW."batch";
    ELSIF NEW."batch_number" IS DISTINCT FROM OLD."batch_number" AND NEW."batch" IS NOT DISTINCT FROM OLD."batch" THEN
        NEW."batch" := NEW."batch_number";
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER "inventory_items_sync_batch" BEFORE INSERT OR UPDATE ON "inventory_items"
    FOR EACH ROW EXECUTE FUNCTION "inventory_items_sync_batch"();

-- Backfill the rows written before the trigger existed
UPDATE "inventory_items" SET "batch_number" = "batch" WHERE "batch_number" IS NULL;
