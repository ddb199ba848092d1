-- Erasing a user (issue #13): the audit of every erasure, and the index that finds one sender's
-- messages without reading the whole log.

-- CreateTable
CREATE TABLE "log_erasure" (
    "id" UUID NOT NULL,
    "operator_id" BIGINT NOT NULL,
    "user_id" BIGINT NOT NULL,
    "reason" VARCHAR(500),
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "rooms" INTEGER NOT NULL DEFAULT 0,
    "messages" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "log_erasure_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
-- One sender's chat messages, room by room in seq order: what an erasure walks. Partial (messages
-- only, like the erasure's own filter); it costs every append one more index entry, which is the
-- price of an erasure that reads only the user's own rows. On a big production table create it
-- beforehand with CREATE INDEX CONCURRENTLY under this name (this statement then finds it).
CREATE INDEX IF NOT EXISTS "chat_message_sender_id_room_id_seq_idx" ON "chat_message"("sender_id", "room_id", "seq") WHERE "kind" = 'message';

-- chat_message.kind has no CHECK constraint (the server checks kinds: core/message.ts), so the new
-- event kind `erase` needs nothing here.
