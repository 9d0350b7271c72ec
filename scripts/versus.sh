#!/usr/bin/env bash
# Switchboard against the Socket.IO peer (benches/peers/socketio), side by
# side in one sitting: each workload runs against both servers alternately,
# RUNS times, each Switchboard run on a fresh database, and one table is
# printed at the end (latency, server and PostgreSQL CPU per delivery, and
# the ratio Switchboard / Socket.IO of the medians).
#
#   scripts/versus.sh [RUNS] [WORKLOAD...]      (default: 2 W1 W2 ramp)
#
# Four servers take turns: Switchboard on PostgreSQL ("switchboard"), the
# same binary on its embedded SQLite default ("sqlite": no DATABASE_URL, a
# fresh DATA_DIR; its database CPU is inside the server's), Socket.IO, and
# the floor (benches/peers/floor: a minimal Rust fan-out that speaks our
# frames and stores nothing). SERVERS="switchboard socketio" picks a subset.
# The sitting also records this disk's fdatasync (pg_test_fsync), so each
# row can be read as "the floor plus one fsync".
#
# Switchboard runs with RATE_LIMIT_PER_SEC=1000 (the load sends faster than
# a person), single instance. Needs node (the peer) and the release build;
# installs the peer's npm packages when missing. Everything runs on
# 127.0.0.1 and stops by itself. Results: target/versus/*.json.
#
# W1x2 is W1 on two instances: two Switchboard instances sharing one
# PostgreSQL database and Redis (a room's members alternate between them, so
# half the deliveries cross the bus), and two Socket.IO nodes joined by
# @socket.io/redis-adapter. SQLite and the floor have no bus and sit it out.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
shift || true
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(W1 W2 ramp)

# The load generator first: building a bench also rebuilds
# target/release/switchboard with the dev-dependencies' features (about
# 2.6 MB more code and a few MiB more RSS), so the server is built after it
# and copied aside, and that copy is what runs.
cargo bench --no-run --bench load >/dev/null 2>&1
cargo build --release --bin switchboard >/dev/null
mkdir -p target/versus
cp target/release/switchboard target/versus/switchboard
cargo build --release --quiet --manifest-path benches/peers/floor/Cargo.toml --target-dir target/floor
loadgen=$(ls -t target/release/deps/load-* | grep -Ev '\.(d|dwp)$' | head -n 1)
if [ ! -d benches/peers/socketio/node_modules/socket.io ]; then
  (cd benches/peers/socketio && npm install --no-audit --no-fund >/dev/null)
fi
out=target/versus
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.prom

pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

args_for() { # workload -> load generator arguments
  case $1 in
    W1) echo "--workload W1 --duration 20" ;;
    W2) echo "--workload W2 --duration 20" ;;
    W1x2) echo "--workload W1 --duration 20" ;;
    ramp) echo "--mode ramp --clients 1000 --rooms 50 --rate 1.5 --ramp-factor 1.5 --ramp-steps 9 --duration 10" ;;
    *) echo "unknown workload $1" >&2; exit 2 ;;
  esac
}

instances_for() { [ "$1" = W1x2 ] && echo 2 || echo 1; }

start_switchboard() { # pg | sqlite [INSTANCES]
  local db="sbvs_$(date +%s)_$RANDOM" instances=${2:-1} prefix="sbvs$RANDOM:"
  sb_data= sb_pids=() sb_urls=()
  for i in $(seq 1 "$instances"); do
    if [ "$1" = sqlite ]; then
      sb_data="$out/data-$db"
      env -u DATABASE_URL -u REDIS_URL DATA_DIR="$sb_data" BIND_ADDR=127.0.0.1:0 RUST_LOG=warn \
        RATE_LIMIT_PER_SEC=1000 RATE_LIMIT_BURST=1000 MAX_CONNECTIONS_PER_IP=100000 \
        target/versus/switchboard >"$out/sb-$i.out" 2>"$out/sb-$i.log" &
    elif [ "$instances" -gt 1 ]; then
      # Several instances: one database, one Redis prefix, distinct ids.
      env DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_URL=redis://127.0.0.1:6379 \
        REDIS_KEY_PREFIX="$prefix" INSTANCE_ID="vs-$i" BIND_ADDR=127.0.0.1:0 RUST_LOG=warn \
        RATE_LIMIT_PER_SEC=1000 RATE_LIMIT_BURST=1000 MAX_CONNECTIONS_PER_IP=100000 \
        target/versus/switchboard >"$out/sb-$i.out" 2>"$out/sb-$i.log" &
    else
      env -u REDIS_URL DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" BIND_ADDR=127.0.0.1:0 RUST_LOG=warn \
        RATE_LIMIT_PER_SEC=1000 RATE_LIMIT_BURST=1000 MAX_CONNECTIONS_PER_IP=100000 \
        target/versus/switchboard >"$out/sb-$i.out" 2>"$out/sb-$i.log" &
    fi
    pids+=($!)
    sb_pids+=($!)
    local url=
    for _ in $(seq 1 200); do
      url=$(sed -n 's/^switchboard listening on //p' "$out/sb-$i.out" | head -n 1)
      [ -n "$url" ] && break
      sleep 0.1
    done
    for _ in $(seq 1 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
    sb_urls+=(--url "$url")
  done
  sb_db=$db
}

stop_switchboard() { # [SAVE_AS]: each instance's /metrics (delivery stages) kept as SAVE_AS-<i>.prom
  if [ -n "${1:-}" ]; then
    local i=0 url
    for url in "${sb_urls[@]}"; do
      [ "$url" = --url ] && continue
      i=$((i + 1))
      curl -sf "$url/metrics" >"$1-$i.prom" || true
    done
  fi
  kill "${sb_pids[@]}" 2>/dev/null || true
  wait "${sb_pids[@]}" 2>/dev/null || true
  if [ -n "$sb_data" ]; then rm -rf "$sb_data"; else
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS \"$sb_db\" WITH (FORCE)" postgres >/dev/null
  fi
}

start_peer() { # [INSTANCES]: several nodes share rooms through @socket.io/redis-adapter
  local instances=${1:-1} redis=
  [ "$instances" -gt 1 ] && redis=redis://127.0.0.1:6379
  peer_pids=() peer_urls=()
  for i in $(seq 1 "$instances"); do
    local port=$((20000 + RANDOM % 20000))
    (cd benches/peers/socketio && PORT=$port REDIS_URL=$redis exec node server.js) >"$out/peer-$i.log" 2>&1 &
    pids+=($!)
    peer_pids+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.1; done
    peer_urls+=(--url "http://127.0.0.1:$port")
  done
}

stop_peer() { kill "${peer_pids[@]}" 2>/dev/null || true; wait "${peer_pids[@]}" 2>/dev/null || true; }

start_floor() {
  local port=$((20000 + RANDOM % 20000))
  PORT=$port target/floor/release/switchboard-floor >"$out/floor.log" 2>&1 &
  pids+=($!)
  floor_pid=$!
  floor_url="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -sf "$floor_url/metrics" >/dev/null && return; sleep 0.1; done
}

# One fdatasync of this disk, in the same sitting (the median of
# pg_test_fsync's "one 8kB write" fdatasync figure, three runs of 1 s per method).
pg_fsync=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/pg_test_fsync
fsync_us=
if [ -x "$pg_fsync" ]; then
  for i in 1 2 3; do
    "$pg_fsync" -s 1 -f "$out/fsync.probe" >"$out/fsync-$i.txt" 2>/dev/null || true
  done
  fsync_us=$(for i in 1 2 3; do
      awk '/one 8kB write/ {f=1} f && !done && /^[ \t]+fdatasync/ {print $(NF-1); done=1}' "$out/fsync-$i.txt"
    done | sort -n | sed -n 2p)
  rm -f "$out/fsync.probe"
fi
echo "${fsync_us:-unknown}" > "$out/fsync_us"

servers=${SERVERS:-switchboard sqlite socketio floor}
for w in "${workloads[@]}"; do
  for n in $(seq 1 "$runs"); do
    for server in $servers; do
      echo "== $w run $n: $server" >&2
      case $server in
        switchboard|sqlite)
          [ "$w" = W1x2 ] && [ "$server" = sqlite ] && continue # one instance only
          start_switchboard "$([ "$server" = sqlite ] && echo sqlite || echo pg)" "$(instances_for "$w")"
          # shellcheck disable=SC2046
          "$loadgen" "${sb_urls[@]}" --label "$server $w" $(args_for "$w") >"$out/$w-$server-$n.json" || true
          stop_switchboard "$out/$w-$server-$n" ;;
        floor)
          [ "$w" = W1x2 ] && continue # a single process; it has no bus
          start_floor
          # shellcheck disable=SC2046
          "$loadgen" --url "$floor_url" --label "floor $w" $(args_for "$w") >"$out/$w-floor-$n.json" || true
          kill "$floor_pid" 2>/dev/null || true; wait "$floor_pid" 2>/dev/null || true ;;
        socketio)
          start_peer "$(instances_for "$w")"
          # shellcheck disable=SC2046
          "$loadgen" "${peer_urls[@]}" --protocol socketio --label "socket.io $w" $(args_for "$w") >"$out/$w-socketio-$n.json" || true
          stop_peer ;;
      esac
    done
  done
done

python3 - "$out" "${workloads[@]}" <<'EOF'
import json, sys, glob, statistics
out, workloads = sys.argv[1], sys.argv[2:]
def load(w, server):
    rows = []
    for f in sorted(glob.glob(f"{out}/{w}-{server}-*.json")):
        for line in open(f):
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, d=2):
    return "–" if x is None else f"{x:.{d}f}"
def ratio_row(w, name, a, b):
    def ratio(k):
        return fmt(a[k] / b[k]) if a.get(k) and b.get(k) else "–"
    if w == "ramp":
        print(f"| {w} | ratio {name}/socket.io | | | | | | | {ratio('held')} |")
    else:
        total = (a.get("cpu") or 0) + (a.get("db") or 0)
        tr = fmt(total / b["cpu"]) if b.get("cpu") else "–"
        print(f"| {w} | ratio {name}/socket.io (medians) | | {ratio('p50')} | {ratio('p99')} | | {ratio('cpu')} (with its database: {tr}) | | – |")

print("| workload | server | runs | delivery p50 ms | p99 ms | lost/dup/order | server CPU µs/delivery | PostgreSQL CPU µs/delivery | held msg/s (ramp) |")
print("|---|---|---|---|---|---|---|---|---|")
for w in workloads:
    meds = {}
    for server in ["switchboard", "sqlite", "socketio", "floor"]:
        if not glob.glob(f"{out}/{w}-{server}-*.json"):
            continue
        rows = load(w, server)
        runs = [r for r in rows if r.get("kind") == "load_run"]
        ramp = [r for r in rows if r.get("kind") == "ramp_result"]
        if w == "ramp":
            held = med([r.get("held_msgs_per_sec") for r in ramp])
            print(f"| {w} | {server} | {len(ramp)} | – | – | – | – | – | {fmt(held, 0)} |")
            meds[server] = {"held": held}
            continue
        p50 = med([r["delivery_ms"]["p50"] for r in runs])
        p99 = med([r["delivery_ms"]["p99"] for r in runs])
        cpu = med([r["server_cpu_us_per_delivery"] for r in runs])
        # SQLite runs inside the server: its CPU is the server's.
        db = None if server in ("sqlite", "socketio", "floor") else med([r.get("db_cpu_us_per_delivery") for r in runs])
        bad = sum(r["lost"] + r["duplicates"] + r["order_violations"] for r in runs)
        ranges = lambda key, sub=None: "/".join(fmt(r[key][sub] if sub else r[key]) for r in runs)
        dbcol = {"sqlite": "in the server", "socketio": "none", "floor": "none"}.get(server) or "/".join(fmt(r.get("db_cpu_us_per_delivery")) for r in runs)
        print(f"| {w} | {server} | {len(runs)} | {ranges('delivery_ms','p50')} | {ranges('delivery_ms','p99')} | {bad} | {ranges('server_cpu_us_per_delivery')} | {dbcol} | – |")
        meds[server] = {"p50": p50, "p99": p99, "cpu": cpu, "db": db}
    b = meds.get("socketio", {})
    for name in ["switchboard", "sqlite"]:
        a = meds.get(name, {})
        if not a or not b:
            continue
        ratio_row(w, name, a, b)
fsync = open(f"{out}/fsync_us").read().strip()
print(f"\nOne fdatasync of this disk in the same sitting (pg_test_fsync, median of 3): {fsync} µs")
EOF
