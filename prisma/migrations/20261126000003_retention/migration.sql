-- Retention (issue #13): per-room overrides of the global policy (RETENTION_MAX_AGE_DAYS,
-- RETENTION_MAX_COUNT). A row replaces the global policy for its room as a whole; a null
-- column means "no limit of that kind in this room". No row: the room follows the global policy.
-- Pruning itself needs no new index: it walks chat_message's primary key (room_id, seq).

-- CreateTable
CREATE TABLE "room_retention" (
    "room_id" BIGINT NOT NULL,
    "max_age_days" INTEGER,
    "max_count" BIGINT,
    "updated_by" BIGINT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "room_retention_pkey" PRIMARY KEY ("room_id")
);

-- The ranges the routes check first (the schema language cannot express CHECK constraints).
ALTER TABLE "room_retention" ADD CONSTRAINT "room_retention_max_age_days_check" CHECK ("max_age_days" IS NULL OR "max_age_days" BETWEEN 1 AND 36500);
ALTER TABLE "room_retention" ADD CONSTRAINT "room_retention_max_count_check" CHECK ("max_count" IS NULL OR "max_count" >= 1);
