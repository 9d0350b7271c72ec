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
# Variants: probed (look-ups, rooms.last_seq update, insert: the form a
# repeat takes), fresh (update, insert: a lone message's first try), max (seq
# from the leaf's max, no update), insert (the row alone), lock (the room row
# locked: a commit that writes WAL and nothing else).
# Uses the PostgreSQL at 127.0.0.1:5432 (user postgres); makes one database
# from migrations/postgres and drops it at the end.
set -euo pipefail
export PGSSLMODE=disable
cd "$(dirname "$0")/.."
runs=${1:-2}; secs=${2:-8}
[ "$secs" -ge 4 ] || { echo "SECONDS must be at least 4" >&2; exit 2; }
db=append_statements_$$
work=$(mktemp -d -p "${TMPDIR:-/tmp}")
psql_() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
cleanup() { psql_ -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

psql_ -c "CREATE DATABASE $db"
for m in $(ls -d migrations/postgres/*/ | sort); do psql_ -d $db -f "$m/up.sql" >/dev/null; done
psql_ -d $db -c "INSERT INTO users (id, username, guest) VALUES ('00000000-0000-0000-0000-000000000001', 'bench', true)" \
  -c "INSERT INTO rooms (name) VALUES ('bench')" -c "CREATE SEQUENCE bench_seq START 1000000000" >/dev/null
L=$(psql_ -d $db -c "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
  WHERE i.inhparent = 'messages'::regclass AND satisfies_hash_partition('messages'::regclass, \
  (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\d+)'))[1]::int, \
  (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'remainder (\d+)'))[1]::int, 1::bigint)")
ID="(lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') || substr(md5(random()::text), 1, 20))::uuid"
IN="WITH input AS (SELECT 1::bigint AS room_id, '00000000-0000-0000-0000-000000000001'::uuid AS user_id, $ID AS id, 'hello there'::text AS body, 'c-' || md5(random()::text) AS client_msg_id, now()::timestamptz AS sent_at)"
EXISTING="existing AS ((SELECT m1.seq, m1.id, m1.body, m1.sent_at FROM $L m1, input i WHERE i.client_msg_id IS NOT NULL AND m1.room_id = i.room_id AND m1.user_id = i.user_id AND m1.client_msg_id = i.client_msg_id LIMIT 1) UNION ALL (SELECT m2.seq, m2.id, m2.body, m2.sent_at FROM $L m2, input i WHERE m2.room_id = i.room_id AND m2.id = i.id LIMIT 1) LIMIT 1)"
COLS="(room_id, seq, id, user_id, body, client_msg_id, sent_at)"
cat > "$work/probed.sql" <<SQL
$IN, $EXISTING, bumped AS (UPDATE rooms r SET last_seq = r.last_seq + 1 FROM input i WHERE r.id = i.room_id AND NOT EXISTS (SELECT 1 FROM existing) RETURNING r.last_seq), inserted AS (INSERT INTO $L $COLS SELECT i.room_id, b.last_seq, i.id, i.user_id, i.body, i.client_msg_id, i.sent_at FROM input i, bumped b RETURNING 1) SELECT 1 AS out_ord, b.last_seq AS out_seq, i.id AS out_id, i.body AS out_body, i.sent_at AS out_sent_at, false AS out_existed FROM input i, bumped b UNION ALL SELECT 1, x.seq, x.id, x.body, x.sent_at, true FROM existing x;
SQL
cat > "$work/fresh.sql" <<SQL
$IN, bumped AS (UPDATE rooms r SET last_seq = r.last_seq + 1 FROM input i WHERE r.id = i.room_id RETURNING r.last_seq) INSERT INTO $L $COLS SELECT i.room_id, b.last_seq, i.id, i.user_id, i.body, i.client_msg_id, i.sent_at FROM input i, bumped b RETURNING 1 AS out_ord, seq AS out_seq, id AS out_id, body AS out_body, sent_at AS out_sent_at, false AS out_existed;
SQL
cat > "$work/max.sql" <<SQL
$IN INSERT INTO $L $COLS SELECT i.room_id, (SELECT coalesce(max(m.seq), 0) + 1 FROM $L m WHERE m.room_id = i.room_id AND m.seq < 1000000000), i.id, i.user_id, i.body, i.client_msg_id, i.sent_at FROM input i RETURNING seq;
SQL
# Seqs far above the others' (a sequence of its own); max looks below them,
# and rooms.last_seq is set to its result after each of its runs, so the
# variants never collide.
cat > "$work/insert.sql" <<SQL
INSERT INTO $L $COLS VALUES (1, nextval('bench_seq'), $ID, '00000000-0000-0000-0000-000000000001', 'hello there', 'c-' || md5(random()::text), now()) RETURNING seq;
SQL
cat > "$work/lock.sql" <<SQL
SELECT 1 FROM rooms WHERE id = 1 FOR UPDATE;
SQL

ticks() { # CPU ticks of the database's backends
  for p in $(pgrep postgres); do
    if tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q " $db "; then awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || true; fi
  done | awk '{s += $1} END {print s + 0}'
}
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$runs"); do
  for v in probed fresh max insert lock; do
    pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 1 -T "$secs" -f "$work/$v.sql" "$db" > "$work/out" 2>&1 & pb=$!
    sleep 1; t0=$(ticks); sleep $((secs - 2)); t1=$(ticks); wait $pb
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/out")
    lat=$(sed -n 's/^latency average = \(.*\)/\1/p' "$work/out")
    [ -n "$tx" ] && [ "$tx" -gt 0 ] || { cat "$work/out" >&2; exit 1; }
    [ $v = max ] && psql_ -d $db -c "UPDATE rooms SET last_seq = (SELECT max(seq) FROM $L WHERE room_id = 1 AND seq < 1000000000) WHERE id = 1" >/dev/null
    echo "$v (round $r): $tx transactions, latency $lat, backend CPU $(( (t1 - t0) * 1000000 / hz * secs / (secs - 2) / tx )) µs per message"
  done
done
