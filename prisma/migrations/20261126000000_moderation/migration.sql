-- Moderation (issue #9): per-room settings, moderators, bans and timeouts, blocked terms, audit.

-- CreateTable
CREATE TABLE "room_settings" (
    "room_id" BIGINT NOT NULL,
    "slow_mode_s" INTEGER NOT NULL DEFAULT 0,
    "moderators_only" BOOLEAN NOT NULL DEFAULT false,
    "max_text_length" INTEGER,
    "version" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "room_settings_pkey" PRIMARY KEY ("room_id")
);

-- CreateTable
CREATE TABLE "room_moderator" (
    "room_id" BIGINT NOT NULL,
    "user_id" BIGINT NOT NULL,
    "added_by" BIGINT NOT NULL,
    "added_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "room_moderator_pkey" PRIMARY KEY ("room_id","user_id")
);

-- CreateTable
CREATE TABLE "room_restriction" (
    "room_id" BIGINT NOT NULL,
    "user_id" BIGINT NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "until" TIMESTAMPTZ(3),
    "reason" VARCHAR(500),
    "issued_by" BIGINT NOT NULL,
    "issued_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "room_restriction_pkey" PRIMARY KEY ("room_id","user_id")
);

-- CreateTable
CREATE TABLE "room_blocked_term" (
    "room_id" BIGINT NOT NULL,
    "term" VARCHAR(102) NOT NULL,
    "added_by" BIGINT NOT NULL,
    "added_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "room_blocked_term_pkey" PRIMARY KEY ("room_id","term")
);

-- CreateTable
CREATE TABLE "moderation_audit" (
    "id" UUID NOT NULL,
    "room_id" BIGINT NOT NULL,
    "actor_id" BIGINT NOT NULL,
    "action" VARCHAR(32) NOT NULL,
    "target" JSONB NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "moderation_audit_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "moderation_audit_room_id_at_idx" ON "moderation_audit"("room_id", "at" DESC);

-- Ranges the service checks first; kept here too so that no other writer can store what the
-- hot path would misread (the schema language cannot express CHECK constraints).
ALTER TABLE "room_settings" ADD CONSTRAINT "room_settings_slow_mode_s_check" CHECK ("slow_mode_s" BETWEEN 0 AND 120);
ALTER TABLE "room_settings" ADD CONSTRAINT "room_settings_max_text_length_check" CHECK ("max_text_length" IS NULL OR "max_text_length" >= 1);
ALTER TABLE "room_restriction" ADD CONSTRAINT "room_restriction_kind_check" CHECK ("kind" IN ('ban', 'timeout') AND ("kind" = 'ban' OR "until" IS NOT NULL));
ALTER TABLE "room_blocked_term" ADD CONSTRAINT "room_blocked_term_term_check" CHECK (char_length("term") >= 1);
