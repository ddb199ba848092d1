-- The highest presenter claim (epoch) of each room, kept with the log so that
-- it survives a Redis that loses its data: an older connection re-asserting
-- its claim afterwards must lose to a newer one Redis no longer knows.
ALTER TABLE "chat_room" ADD COLUMN "presenter_epoch" BIGINT NOT NULL DEFAULT 0;
