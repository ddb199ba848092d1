-- Moderation events in the chat log (issue #9): one seq order for messages and events.
-- Safe on a populated table: every new column is nullable or has a constant default
-- (PostgreSQL 11+ adds those without rewriting the table).

-- AlterTable
ALTER TABLE "chat_message" ADD COLUMN "kind" VARCHAR(16) NOT NULL DEFAULT 'message';
ALTER TABLE "chat_message" ADD COLUMN "event" JSONB;
ALTER TABLE "chat_message" ADD COLUMN "deleted_at" TIMESTAMPTZ(3);
ALTER TABLE "chat_message" ADD COLUMN "deleted_by" BIGINT;
