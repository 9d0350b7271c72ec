-- Read markers: how far each member has read each room (a seq; it only moves forward).
ALTER TABLE room_members ADD COLUMN last_read INTEGER NOT NULL DEFAULT 0 CHECK (last_read >= 0);
