-- Scenario 5, remove a column: deployed after the application stopped using `users.name` and
-- 24-48 hours passed with no reads of it. Destructive: no down.sql.

-- AlterTable
ALTER TABLE "users" DROP COLUMN "name";
