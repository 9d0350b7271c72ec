#!/usr/bin/env bash
# What PostgreSQL's CPU per lone message is made of: the writer's statement
# (store/append.rs) and cheaper variants of it, each under pgbench -M prepared,
# one client, one message per transaction, the backend's CPU from /proc over
# the middle of each run; variants alternate, RUNS rounds. Every message has
# a client_msg_id (as the load generator sends) and a time-ordered id (as the
# server makes). docs/performance.md, "A lone message is inserted without
# looking for an earlier copy first", has the figures.
#
#   scripts/append-cost-statements.sh [RUNS] [SECONDS]     (default 2 rounds of 8 s)
#
# Variants: probed (look-ups, room_seqs.last_seq update, insert: the form a
# repeat takes), fresh (update, insert: a lone message's first try), rooms
# (fresh with the counter where it was before 2026-12-08, a column of the
# wide `rooms` row with its CHECKs; added to this database for the
# comparison), max (seq from the leaf's max, no update), insert (the row
# alone), lock (the room's counter row locked: a commit that writes WAL and
# nothing else).
# Uses the PostgreSQL at 127.0.0.1:5432 (user postgres); makes one database
# from migrations/postgres and drops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/append-cost/common.sh
runs=${1:-2}; secs=${2:-8}
[ "$secs" -ge 4 ] || { echo "SECONDS must be at least 4" >&2; exit 2; }
db=append_statements_$$
work=$(mktemp -d -p "${TMPDIR:-/tmp}")
cleanup() { psql_ -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

make_db $db
psql_ -d $db -c "CREATE SEQUENCE bench_seq START 1000000000" \
  -c "ALTER TABLE rooms ADD COLUMN last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0)" >/dev/null
L=$(leaf_of_room_1 $db)
ID="(lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') || substr(md5(random()::text), 1, 20))::uuid"
CMID="'c-' || md5(random()::text)"
IN=$(input_cte "$ID" "$CMID")
COLS="(room_id, seq, id, user_id, body, client_msg_id, sent_at)"
probed_sql "$L" "$ID" "$CMID" > "$work/probed.sql"
# The lone message's first try, its counter in table $1 keyed by column $2.
fresh_sql() {
  echo "$IN, bumped AS (UPDATE $1 r SET last_seq = r.last_seq + 1 FROM input i WHERE r.$2 = i.room_id RETURNING r.last_seq) INSERT INTO $L $COLS SELECT i.room_id, b.last_seq, i.id, i.user_id, i.body, i.client_msg_id, i.sent_at FROM input i, bumped b RETURNING 1 AS out_ord, seq AS out_seq, id AS out_id, body AS out_body, sent_at AS out_sent_at, false AS out_existed;"
}
fresh_sql room_seqs room_id > "$work/fresh.sql"
fresh_sql rooms id > "$work/rooms.sql"
cat > "$work/max.sql" <<SQL
$IN INSERT INTO $L $COLS SELECT i.room_id, (SELECT coalesce(max(m.seq), 0) + 1 FROM $L m WHERE m.room_id = i.room_id AND m.seq < 1000000000), i.id, i.user_id, i.body, i.client_msg_id, i.sent_at FROM input i RETURNING seq;
SQL
# Seqs far above the others' (a sequence of its own); max looks below them,
# and room_seqs.last_seq is set to its result after each of its runs, so the
# variants never collide.
cat > "$work/insert.sql" <<SQL
INSERT INTO $L $COLS VALUES (1, nextval('bench_seq'), $ID, '00000000-0000-0000-0000-000000000001', 'hello there', $CMID, now()) RETURNING seq;
SQL
cat > "$work/lock.sql" <<SQL
SELECT 1 FROM room_seqs WHERE room_id = 1 FOR UPDATE;
SQL

for r in $(seq 1 "$runs"); do
  for v in probed fresh rooms max insert lock; do
    if [ $v = rooms ]; then
      psql_ -d $db -c "UPDATE rooms SET last_seq = (SELECT last_seq FROM room_seqs WHERE room_id = 1) WHERE id = 1" >/dev/null
    fi
    measure "$v (round $r)" $db "$work/$v.sql"
    if [ $v = rooms ]; then
      psql_ -d $db -c "UPDATE room_seqs SET last_seq = (SELECT last_seq FROM rooms WHERE id = 1) WHERE room_id = 1" >/dev/null
    fi
    if [ $v = max ]; then
      psql_ -d $db -c "UPDATE room_seqs SET last_seq = (SELECT max(seq) FROM $L WHERE room_id = 1 AND seq < 1000000000) WHERE room_id = 1" >/dev/null
    fi
  done
done
