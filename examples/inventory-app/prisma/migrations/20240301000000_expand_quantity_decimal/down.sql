-- Rollback for: expand_quantity_decimal (the integer column still holds every value)
DROP TRIGGER IF EXISTS "inventory_items_sync_quantity" ON "inventory_items";
DROP FUNCTION IF EXISTS "inventory_items_sync_quantity"();
ALTER TABLE "inventory_items" DROP COLUMN IF EXISTS "quantity_decimal";
