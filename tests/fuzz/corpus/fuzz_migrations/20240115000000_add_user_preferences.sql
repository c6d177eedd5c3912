-- AlterTable
ALTER TABLE "users" ADD COLUMN "preferences" JSONB;
