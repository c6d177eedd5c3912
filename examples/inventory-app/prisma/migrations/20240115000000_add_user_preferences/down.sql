-- Rollback for: add_user_preferences
ALTER TABLE "users" DROP COLUMN IF EXISTS "preferences";
