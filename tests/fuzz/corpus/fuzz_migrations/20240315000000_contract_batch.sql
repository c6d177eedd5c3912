-- Scenario 2, step 2 (contract), deployed once no running application version reads or writes
-- `batch`: `batch_number` becomes required and the old column goes. Destructive: no down.sql
-- (undo it by restoring the snapshot taken before it).
DROP TRIGGER IF EXISTS "inventory_items_sync_batch" ON "inventory_items";
DROP FUNCTION IF EXISTS "inventory_items_sync_batch"();

-- AlterTable
ALTER TABLE "inventory_items" ALTER COLUMN "batch_number" SET NOT NULL;
ALTER TABLE "inventory_items" DROP COLUMN "batch";
