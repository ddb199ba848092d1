-- Statistics (issue #13): a room's messages by time, and counters rolled up per room, hour and
-- sender by a background job (apps/server/src/chatlog/stats-rollup.ts), so that no request reads
-- the whole log.

-- CreateIndex
-- A room's messages in a time window (first and last message time of a stats window) as an index
-- range. Migrations run in a transaction, so this is a plain CREATE INDEX, which blocks writes to
-- chat_message while it builds: on a big production table create it beforehand with
-- CREATE INDEX CONCURRENTLY under this name (this statement then finds it and does nothing).
CREATE INDEX IF NOT EXISTS "chat_message_room_id_created_at_idx" ON "chat_message"("room_id", "created_at");

-- CreateTable
-- Chat messages (moderation events excluded) per room, UTC hour and sender.
CREATE TABLE "stats_sender_hour" (
    "room_id" BIGINT NOT NULL,
    "hour" TIMESTAMPTZ(3) NOT NULL,
    "sender_id" BIGINT NOT NULL,
    "messages" BIGINT NOT NULL,

    CONSTRAINT "stats_sender_hour_pkey" PRIMARY KEY ("room_id","hour","sender_id")
);

-- CreateTable
-- Chat messages per room and UTC hour (the sum of stats_sender_hour's rows of that room and hour).
CREATE TABLE "stats_room_hour" (
    "room_id" BIGINT NOT NULL,
    "hour" TIMESTAMPTZ(3) NOT NULL,
    "messages" BIGINT NOT NULL,

    CONSTRAINT "stats_room_hour_pkey" PRIMARY KEY ("room_id","hour")
);

-- CreateIndex
-- The busiest rooms of a window: every room's hours in the window.
CREATE INDEX "stats_room_hour_hour_idx" ON "stats_room_hour"("hour");

-- CreateTable
-- How far the rollup has counted each room: every seq up to rolled_seq is in the counters.
CREATE TABLE "stats_rollup_room" (
    "room_id" BIGINT NOT NULL,
    "rolled_seq" BIGINT NOT NULL DEFAULT 0,
    "rolled_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "stats_rollup_room_pkey" PRIMARY KEY ("room_id")
);
