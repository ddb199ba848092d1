-- CreateTable
CREATE TABLE "chat_room" (
    "room_id" BIGINT NOT NULL,
    "last_seq" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "chat_room_pkey" PRIMARY KEY ("room_id")
);

-- CreateTable
CREATE TABLE "chat_message" (
    "room_id" BIGINT NOT NULL,
    "seq" BIGINT NOT NULL,
    "id" UUID NOT NULL,
    "sender_id" BIGINT NOT NULL,
    "nickname" TEXT NOT NULL,
    "user_type" VARCHAR(16) NOT NULL,
    "text" TEXT NOT NULL,
    "client_msg_id" VARCHAR(128),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "chat_message_pkey" PRIMARY KEY ("room_id","seq")
);

-- CreateIndex
CREATE UNIQUE INDEX "chat_message_id_key" ON "chat_message"("id");

-- CreateIndex
-- Partial: only messages sent with a client message id need the idempotency check,
-- so the common case pays for two index entries per row, not three.
CREATE UNIQUE INDEX "chat_message_room_id_sender_id_client_msg_id_key" ON "chat_message"("room_id", "sender_id", "client_msg_id") WHERE "client_msg_id" IS NOT NULL;

-- AddForeignKey
ALTER TABLE "chat_message" ADD CONSTRAINT "chat_message_room_id_fkey" FOREIGN KEY ("room_id") REFERENCES "chat_room"("room_id") ON DELETE RESTRICT ON UPDATE CASCADE;
