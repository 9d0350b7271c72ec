# Shared by scripts/append-cost-statements.sh
# (sourced): a database made from the migrations, room 1's leaf, and one
# pgbench run's backend CPU per message. The caller sets `secs` and `work`.
export PGSSLMODE=disable  # the server talks to PostgreSQL without TLS; so does this
psql_() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

make_db() { # database: created from migrations/postgres, one user and one room
  psql_ -c "CREATE DATABASE $1"
  for m in $(ls -d migrations/postgres/*/ | sort); do psql_ -d "$1" -f "$m/up.sql" >/dev/null; done
  psql_ -d "$1" -c "INSERT INTO users (id, username, guest) VALUES ('00000000-0000-0000-0000-000000000001', 'bench', true)" \
    -c "INSERT INTO rooms (name) VALUES ('bench')" >/dev/null
}

leaf_of_room_1() { # database: room 1's leaf, asked the way the writer asks (store/append.rs, `Leaves`)
  psql_ -d "$1" -c "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
    WHERE i.inhparent = 'messages'::regclass AND satisfies_hash_partition('messages'::regclass, \
    (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\d+)'))[1]::int, \
    (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'remainder (\d+)'))[1]::int, 1::bigint)"
}

ticks() { # database: CPU ticks of its backends
  for p in $(pgrep postgres); do
    # (a process that is not one of them, or is gone, is no failure)
    if tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q " $1 "; then awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || true; fi
  done | awk '{s += $1} END {print s + 0}'
}

measure() { # label database file.sql: pgbench -M prepared, one client, `secs` seconds
  pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 1 -T "$secs" -f "$3" "$2" > "$work/out" 2>&1 & local pb=$!
  sleep 1; local t0; t0=$(ticks "$2"); sleep $((secs - 2)); local t1; t1=$(ticks "$2"); wait $pb
  local tx lat hz
  hz=$(getconf CLK_TCK)
  tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/out")
  lat=$(sed -n 's/^latency average = \(.*\)/\1/p' "$work/out")
  [ -n "$tx" ] && [ "$tx" -gt 0 ] || { cat "$work/out" >&2; return 1; }
  # Ticks over secs - 2 seconds, against the run's average rate.
  echo "$1: $tx transactions, latency $lat, backend CPU $(( (t1 - t0) * 1000000 / hz * secs / (secs - 2) / tx )) µs per message"
}

# The writer's lone-message statement with its look-ups (store/append.rs,
# `LeafOne` with `probe`), for leaf $1, with $2 as the message id and $3 as
# its client_msg_id (SQL expressions).
input_cte() { echo "WITH input AS (SELECT 1::bigint AS room_id, '00000000-0000-0000-0000-000000000001'::uuid AS user_id, $1 AS id, 'hello there'::text AS body, $2 AS client_msg_id, now()::timestamptz AS sent_at)"; }
probed_sql() {
  echo "$(input_cte "$2" "$3"), existing AS ((SELECT m1.seq, m1.id, m1.body, m1.sent_at FROM $1 m1, input i WHERE i.client_msg_id IS NOT NULL AND m1.room_id = i.room_id AND m1.user_id = i.user_id AND m1.client_msg_id = i.client_msg_id LIMIT 1) UNION ALL (SELECT m2.seq, m2.id, m2.body, m2.sent_at FROM $1 m2, input i WHERE m2.room_id = i.room_id AND m2.id = i.id LIMIT 1) LIMIT 1), bumped AS (UPDATE room_seqs r SET last_seq = r.last_seq + 1 FROM input i WHERE r.room_id = i.room_id AND NOT EXISTS (SELECT 1 FROM existing) RETURNING r.last_seq), inserted AS (INSERT INTO $1 (room_id, seq, id, user_id, body, client_msg_id, sent_at) SELECT i.room_id, b.last_seq, i.id, i.user_id, i.body, i.client_msg_id, i.sent_at FROM input i, bumped b RETURNING 1) SELECT 1 AS out_ord, b.last_seq AS out_seq, i.id AS out_id, i.body AS out_body, i.sent_at AS out_sent_at, false AS out_existed FROM input i, bumped b UNION ALL SELECT 1, x.seq, x.id, x.body, x.sent_at, true FROM existing x;"
}
