#!/usr/bin/env bash
# A performance review that runs itself: the wall-clock workloads side by
# side with the Socket.IO peer (W1, W2 and the ramp through scripts/versus.sh,
# Switchboard on PostgreSQL and on its SQLite default), the HTTP mix W4 on
# Switchboard (the peer has no HTTP API), and the hot path's instruction
# counts; written to docs/reviews/YYYY-MM-DD.md and compared with the
# previous report there.
#
#   scripts/perf-review.sh [RUNS]     (default 1 run per workload and server)
#
# Takes about 12 minutes with one run. Everything on 127.0.0.1; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
day=$(date -u +%F)
report=docs/reviews/$day.md
mkdir -p docs/reviews target/review
previous=$(ls docs/reviews/*.md 2>/dev/null | grep -v "/$day.md$" | sort | tail -n 1 || true)

scripts/versus.sh "$runs" W1 W2 ramp > target/review/versus.md
cp target/versus/*.json target/review/ 2>/dev/null || true

# W4 on a fresh database.
loadgen=$(ls -t target/release/deps/load-* | grep -Ev '\.(d|dwp)$' | head -n 1)
db="sbrev_$(date +%s)"
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" BIND_ADDR=127.0.0.1:0 RUST_LOG=warn \
  RATE_LIMIT_PER_SEC=1000 RATE_LIMIT_BURST=1000 MAX_CONNECTIONS_PER_IP=100000 \
  target/release/switchboard > target/review/w4.out 2> target/review/w4.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do url=$(sed -n 's/^switchboard listening on //p' target/review/w4.out | head -n 1); [ -n "$url" ] && break; sleep 0.1; done
"$loadgen" --url "$url" --workload W4 --duration 20 > target/review/w4.json 2>/dev/null || true
kill $pid; wait $pid 2>/dev/null || true
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" postgres >/dev/null || true

scripts/perf-gate.sh show > target/review/instructions.json

python3 - "$report" "$day" "${previous:-}" <<'EOF'
import glob, json, os, platform, subprocess, sys
report, day, previous = sys.argv[1], sys.argv[2], sys.argv[3]

def rows(pattern, kind):
    out = []
    for f in sorted(glob.glob(pattern)):
        for line in open(f):
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("kind") == kind:
                    out.append(r)
    return out

def med(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None

figures = {}
for w in ["W1", "W2"]:
    for server in ["switchboard", "sqlite", "socketio"]:
        runs = rows(f"target/review/{w}-{server}-*.json", "load_run")
        if runs:
            figures[f"{w} {server} p50 ms"] = med([r["delivery_ms"]["p50"] for r in runs])
            figures[f"{w} {server} p99 ms"] = med([r["delivery_ms"]["p99"] for r in runs])
            cpu = med([r["server_cpu_us_per_delivery"] for r in runs])
            db = med([r.get("db_cpu_us_per_delivery") for r in runs]) if server == "switchboard" else 0
            figures[f"{w} {server} CPU µs/delivery (with database)"] = round(cpu + (db or 0), 2)
            figures[f"{w} {server} lost+dup+order"] = sum(r["lost"] + r["duplicates"] + r["order_violations"] for r in runs)
for server in ["switchboard", "sqlite", "socketio"]:
    ramp = rows(f"target/review/ramp-{server}-*.json", "ramp_result")
    if ramp:
        held = med([r.get("held_msgs_per_sec") for r in ramp])
        broke = med([r.get("broke_at_msgs_per_sec") for r in ramp])
        # None: it broke at its first step.
        figures[f"ramp {server} held msg/s"] = held if held is not None else f"none (broke at {broke:.0f})" if broke else "none"
w4 = rows("target/review/w4.json", "http_run")
if w4:
    for route in w4[0]["routes"]:
        name = route.get("route") or route.get("name")
        p95 = route.get("p95_ms")
        if name and p95 is not None:
            figures[f"W4 {name} p95 ms"] = p95
    figures["W4 queries per request"] = round(w4[0]["db_queries_per_request"], 2)
for op, n in json.load(open("target/review/instructions.json")).items():
    figures[f"instructions {op}"] = n

before = {}
if previous and os.path.exists(previous):
    text = open(previous).read()
    if "```json" in text:
        before = json.loads(text.split("```json", 1)[1].split("```", 1)[0])

commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = os.cpu_count()
with open(report, "w") as out:
    out.write(f"# Performance review {day}\n\n")
    out.write(f"Commit {commit}; {cores} × {cpu}; server, databases and load generator on the same machine. ")
    out.write("Made by `scripts/perf-review.sh`: W1, W2 and the ramp side by side (`scripts/versus.sh`), W4 on Switchboard, ")
    out.write("and the hot path's instruction counts (`scripts/perf-gate.sh`). Wall-clock figures compare only within one report; ")
    out.write("across reports, read them with the machine's noise in mind; instruction counts compare exactly.\n\n")
    out.write(f"Compared with: {os.path.basename(previous) if before else 'nothing (the first review)'}\n\n")
    out.write("| figure | this review | previous | change |\n|---|---|---|---|\n")
    for k, v in figures.items():
        b = before.get(k)
        change = f"{(v - b) / b * 100:+.1f} %" if isinstance(v, (int, float)) and isinstance(b, (int, float)) and b else "–"
        out.write(f"| {k} | {v} | {b if b is not None else '–'} | {change} |\n")
    out.write("\nThe side-by-side table as `scripts/versus.sh` printed it:\n\n")
    out.write(open("target/review/versus.md").read().split("| workload", 1)[-1].join(["| workload", ""]) if "| workload" in open("target/review/versus.md").read() else "")
    out.write("\n\nMachine-readable figures (the next review compares against these):\n\n```json\n")
    out.write(json.dumps(figures, indent=1, ensure_ascii=False))
    out.write("\n```\n")
print(open(report).read())
EOF
