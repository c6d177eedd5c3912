-- Scenario 4, step 2 (contract): the DECIMAL column takes the name `quantity` and the INTEGER one
-- goes. Destructive: no down.sql.
DROP TRIGGER IF EXISTS "inventory_items_sync_quantity" ON "inventory_items";
DROP FUNCTION IF EXISTS "inventory_items_sync_quantity"();

-- AlterTable
ALTER TABLE "inventory_items" DROP COLUMN "quantity";
ALTER TABLE "inventory_items" RENAME COLUMN "quantity_decimal" TO "quantity";
ALTER TABLE "inventory_items" ALTER COLUMN "quantity" SET NOT NULL;
