-- Read markers: how far each member has read each room (a seq; it only
-- moves forward). Unread counts are read per request from the messages'
-- primary key (room_id, seq), a bounded range scan after the marker.
ALTER TABLE room_members ADD COLUMN last_read bigint NOT NULL DEFAULT 0 CHECK (last_read >= 0);
