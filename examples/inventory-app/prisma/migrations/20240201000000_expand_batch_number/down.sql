-- Rollback for: expand_batch_number (the old column still holds every value)
DROP TRIGGER IF EXISTS "inventory_items_sync_batch" ON "inventory_items";
DROP FUNCTION IF EXISTS "inventory_items_sync_batch"();
ALTER TABLE "inventory_items" DROP COLUMN IF EXISTS "batch_number";
