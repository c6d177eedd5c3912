-- Scenario 3, an index on a large table: built CONCURRENTLY, so writes go on meanwhile. Alone
-- in its migration: PostgreSQL cannot build an index concurrently inside a transaction block.
CREATE INDEX CONCURRENTLY "inventory_items_item_name_batch_number_idx" ON "inventory_items"("item_name", "batch_number");
