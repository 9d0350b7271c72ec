#!/usr/bin/env bash
# PostgreSQL's CPU for one lone-message append, the statement the writer
# prepares for W1's usual batch (store/append.rs, `LeafOne`), with and
# without the CHECK constraints of `rooms` (which the statement's UPDATE of
# rooms.last_seq evaluates on every message): pgbench -M prepared, one
# client, one message per transaction, the backend's CPU from /proc over
# the middle of each run. Runs alternate, RUNS times each.
#
#   scripts/append-cost.sh [RUNS] [SECONDS]      (default 3 runs of 10 s)
#
# APPEND_COST_B="FILE.sql ...": the second database gets these files' SQL, in
# order, instead of losing its CHECKs (e.g. a migration being weighed).
#
# Uses the PostgreSQL at 127.0.0.1:5432 (user postgres); creates two
# databases from migrations/postgres and drops them at the end.
set -euo pipefail
# The server talks to PostgreSQL without TLS; so does this.
export PGSSLMODE=disable
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
[ "$secs" -ge 4 ] || { echo "SECONDS must be at least 4" >&2; exit 2; }
a=append_cost_a_$$; b=append_cost_b_$$
work=$(mktemp -d -p "${TMPDIR:-/tmp}")
psql_() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
cleanup() { psql_ -c "DROP DATABASE IF EXISTS $a" -c "DROP DATABASE IF EXISTS $b" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

for db in $a $b; do
  psql_ -c "CREATE DATABASE $db"
  for m in $(ls -d migrations/postgres/*/ | sort); do psql_ -d $db -f "$m/up.sql" >/dev/null; done
  psql_ -d $db -c "INSERT INTO users (id, username, guest) VALUES ('00000000-0000-0000-0000-000000000001', 'bench', true)" \
    -c "INSERT INTO rooms (name) VALUES ('bench')"
done
if [ -n "${APPEND_COST_B:-}" ]; then
  for f in $APPEND_COST_B; do psql_ -d $b -f "$f" >/dev/null; done
else
  for c in $(psql_ -d $b -c "SELECT conname FROM pg_constraint WHERE contype = 'c' AND conrelid = 'rooms'::regclass"); do
    psql_ -d $b -c "ALTER TABLE rooms DROP CONSTRAINT $c"
  done
fi

# Room 1's leaf, asked the way the writer asks (store/append.rs, `Leaves`).
leaf=$(psql_ -d $a -c "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
  WHERE i.inhparent = 'messages'::regclass AND satisfies_hash_partition('messages'::regclass, \
  (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\d+)'))[1]::int, \
  (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'remainder (\d+)'))[1]::int, 1::bigint)")
cat > "$work/one.sql" <<SQL
WITH input AS (SELECT 1::bigint AS room_id, '00000000-0000-0000-0000-000000000001'::uuid AS user_id, gen_random_uuid() AS id, 'hello there'::text AS body, NULL::text AS client_msg_id, now()::timestamptz AS sent_at), existing AS ((SELECT m1.seq, m1.id, m1.body, m1.sent_at FROM $leaf m1, input i WHERE i.client_msg_id IS NOT NULL AND m1.room_id = i.room_id AND m1.user_id = i.user_id AND m1.client_msg_id = i.client_msg_id LIMIT 1) UNION ALL (SELECT m2.seq, m2.id, m2.body, m2.sent_at FROM $leaf m2, input i WHERE m2.room_id = i.room_id AND m2.id = i.id LIMIT 1) LIMIT 1), bumped AS (UPDATE rooms r SET last_seq = r.last_seq + 1 FROM input i WHERE r.id = i.room_id AND NOT EXISTS (SELECT 1 FROM existing) RETURNING r.last_seq), inserted AS (INSERT INTO $leaf (room_id, seq, id, user_id, body, client_msg_id, sent_at) SELECT i.room_id, b.last_seq, i.id, i.user_id, i.body, i.client_msg_id, i.sent_at FROM input i, bumped b RETURNING 1) SELECT 1 AS out_ord, b.last_seq AS out_seq, i.id AS out_id, i.body AS out_body, i.sent_at AS out_sent_at, false AS out_existed FROM input i, bumped b UNION ALL SELECT 1, x.seq, x.id, x.body, x.sent_at, true FROM existing x;
SQL

ticks() { # CPU ticks of database $1's backends
  for p in $(pgrep postgres); do
    # (a process that is not one of them, or is gone, is no failure)
    if tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q " $1 "; then awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || true; fi
  done | awk '{s += $1} END {print s + 0}'
}
hz=$(getconf CLK_TCK)
measure() { # label database
  pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 1 -T "$secs" -f "$work/one.sql" "$2" > "$work/out" 2>&1 & local pb=$!
  sleep 1; local t0; t0=$(ticks "$2"); sleep $((secs - 2)); local t1; t1=$(ticks "$2"); wait $pb
  local tx lat
  tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/out")
  lat=$(sed -n 's/^latency average = \(.*\)/\1/p' "$work/out")
  # Ticks over secs - 2 seconds, against the run's average rate.
  echo "$1: $tx transactions, latency $lat, backend CPU $(( (t1 - t0) * 1000000 / hz * secs / (secs - 2) / tx )) µs per message"
}
for r in $(seq 1 "$runs"); do
  measure "as migrated (run $r)" $a
  measure "${APPEND_COST_B:-without the rooms CHECKs} (run $r)" $b
done
