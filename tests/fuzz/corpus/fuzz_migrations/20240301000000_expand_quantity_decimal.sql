-- Scenario 4, change `quantity` from INTEGER to DECIMAL by expand/contract. Step 1 (expand): a
-- new DECIMAL column, kept equal to `quantity` by a trigger while both application versions run.

-- AlterTable
ALTER TABLE "inventory_items" ADD COLUMN "quantity_decimal" DECIMAL(65,30);

CREATE FUNCTION "inventory_items_sync_quantity"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW."quantity_decimal" := COALESCE(NEW."quantity_decimal", NEW."quantity");
        NEW."quantity" := COALESCE(NEW."quantity", round(NEW."quantity_decimal")::integer);
    ELSIF NEW."quantity" IS DISTINCT FROM OLD."quantity" AND NEW."quantity_decimal" IS NOT DISTINCT FROM OLD."quantity_decimal" THEN
        NEW."quantity_decimal" := NEW."quantity";
    ELSIF NEW."quantity_decimal" IS DISTINCT FROM OLD."quantity_decimal" AND NEW."quantity" IS NOT DISTINCT FROM OLD."quantity" THEN
        NEW."quantity" := round(NEW."quantity_decimal")::integer;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER "inventory_items_sync_quantity" BEFORE INSERT OR UPDATE ON "inventory_items"
    FOR EACH ROW EXECUTE FUNCTION "inventory_items_sync_quantity"();

-- Backfill
UPDATE "inventory_items" SET "quantity_decimal" = "quantity"::decimal WHERE "quantity_decimal" IS NULL;
