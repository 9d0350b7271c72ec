#!/usr/bin/env bash
# PostgreSQL's CPU for one lone-message append, the writer's statement for
# W1's usual batch in the form with its look-ups (store/append.rs, `LeafOne`;
# scripts/append-cost-statements.sh weighs the other forms), with and
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
cd "$(dirname "$0")/.."
. scripts/append-cost/common.sh
runs=${1:-3}; secs=${2:-10}
[ "$secs" -ge 4 ] || { echo "SECONDS must be at least 4" >&2; exit 2; }
a=append_cost_a_$$; b=append_cost_b_$$
work=$(mktemp -d -p "${TMPDIR:-/tmp}")
cleanup() { psql_ -c "DROP DATABASE IF EXISTS $a" -c "DROP DATABASE IF EXISTS $b" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

for db in $a $b; do make_db $db; done
if [ -n "${APPEND_COST_B:-}" ]; then
  for f in $APPEND_COST_B; do psql_ -d $b -f "$f" >/dev/null; done
else
  for c in $(psql_ -d $b -c "SELECT conname FROM pg_constraint WHERE contype = 'c' AND conrelid = 'rooms'::regclass"); do
    psql_ -d $b -c "ALTER TABLE rooms DROP CONSTRAINT $c"
  done
fi

leaf=$(leaf_of_room_1 $a)
probed_sql "$leaf" "gen_random_uuid()" "NULL::text" > "$work/one.sql"

for r in $(seq 1 "$runs"); do
  measure "as migrated (run $r)" $a "$work/one.sql"
  measure "${APPEND_COST_B:-without the rooms CHECKs} (run $r)" $b "$work/one.sql"
done
