-- Rollback for: add_inventory_items_name_batch_number_index
DROP INDEX CONCURRENTLY IF EXISTS "inventory_items_item_name_batch_number_idx";
