#!/usr/bin/env python3
"""The room list with unread counts at scale (docs/performance.md, "Unread
counts"): one user in 500 rooms, 10,000,000 messages stored (20,000 per
room, by someone else), read markers 0 to 59 messages behind the newest in
490 rooms and 1,200 behind in 10 (counted up to the cap, 100). Times
`GET /api/v1/rooms?joined=true&limit=200` (three pages: the whole list)
against a release build, and prints EXPLAIN (ANALYZE, BUFFERS) of the
read-state query on PostgreSQL.

    scripts/unread-list.py --backend postgres   # a database of its own, dropped after
    scripts/unread-list.py --backend sqlite     # a file under target/

Bounded: the data load, then --requests list reads; the server it starts
is stopped at the end.
"""
import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "switchboard")
ROOMS, PER_ROOM = 500, 20_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, token=None, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as r:
        data = r.read()
        return json.loads(data) if data else None


def start(url, log):
    port = free_port()
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": url, "BIND_ADDR": f"127.0.0.1:{port}", "RUST_LOG": "warn",
           "SIGNUPS_PER_MIN": "100000", "ROOMS_PER_MIN": "100000", "RATE_LIMIT_PER_SEC": "100000"}
    proc = subprocess.Popen([BIN], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1)
            return proc, base
        except Exception:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not become ready")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def sign_in(base):
    return call(base, "POST", "/api/v1/sessions", body={"username": "reader", "password": "correct horse"})["token"]


def behind(i):
    return 1200 if i % 50 == 0 else random.Random(i).randrange(60)


def psql(db, sql):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          check=True, capture_output=True, text=True).stdout


def load_postgres(db):
    t = time.time()
    psql(db, f"""
        INSERT INTO messages (room_id, seq, id, user_id, body, sent_at)
        SELECT r.id, g, gen_random_uuid(), (SELECT id FROM users WHERE username = 'writer'), 'message ' || g, now()
          FROM rooms r CROSS JOIN generate_series(1, {PER_ROOM}) g WHERE r.name LIKE 'u%';
        UPDATE room_seqs SET last_seq = {PER_ROOM} WHERE room_id IN (SELECT id FROM rooms WHERE name LIKE 'u%');
        ANALYZE;""")
    for i in range(ROOMS):
        psql(db, f"UPDATE room_members SET last_read = {PER_ROOM - behind(i)} "
                 f"WHERE user_id = (SELECT id FROM users WHERE username = 'reader') "
                 f"AND room_id = (SELECT id FROM rooms WHERE name = 'u{i:03d}')")
    print(f"loaded {ROOMS * PER_ROOM:,} messages in {time.time() - t:.0f} s", file=sys.stderr)


def load_sqlite(path):
    t = time.time()
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    writer = c.execute("SELECT id FROM users WHERE username = 'writer'").fetchone()[0]
    reader = c.execute("SELECT id FROM users WHERE username = 'reader'").fetchone()[0]
    now = int(time.time() * 1_000_000)
    rooms = c.execute("SELECT id, name FROM rooms WHERE name LIKE 'u%' ORDER BY name").fetchall()
    for room_id, _ in rooms:
        c.executemany("INSERT INTO messages (room_id, seq, id, user_id, body, sent_at) VALUES (?, ?, ?, ?, ?, ?)",
                      ((room_id, s, uuid.uuid4().bytes, writer, f"message {s}", now) for s in range(1, PER_ROOM + 1)))
        c.commit()
    c.execute(f"UPDATE room_seqs SET last_seq = {PER_ROOM} WHERE room_id IN (SELECT id FROM rooms WHERE name LIKE 'u%')")
    for i, (room_id, _) in enumerate(rooms):
        c.execute("UPDATE room_members SET last_read = ? WHERE user_id = ? AND room_id = ?", (PER_ROOM - behind(i), reader, room_id))
    c.commit()
    c.execute("ANALYZE")
    c.close()
    print(f"loaded {ROOMS * PER_ROOM:,} messages in {time.time() - t:.0f} s", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["postgres", "sqlite"], required=True)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the loaded database (postgres: sb_unread_keep) for --reuse")
    ap.add_argument("--reuse", action="store_true", help="time against the database a --keep run left")
    args = ap.parse_args()
    work = os.path.join(ROOT, "target", "unread-list")
    os.makedirs(work, exist_ok=True)
    log = open(os.path.join(work, f"server-{args.backend}.log"), "w")
    if args.backend == "postgres":
        db = "sb_unread_keep" if args.keep or args.reuse else f"sb_unread_{os.getpid()}"
        if not args.reuse:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", f"CREATE DATABASE {db}"], check=True)
        url = f"postgres://postgres@127.0.0.1:5432/{db}"
    else:
        path = os.path.join(work, "unread.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix) and not args.reuse:
                os.remove(path + suffix)
        url = f"sqlite://{path}"
    try:
        if not args.reuse:
            proc, base = start(url, log)
            call(base, "POST", "/api/v1/users", body={"username": "reader", "password": "correct horse"})
            call(base, "POST", "/api/v1/users", body={"username": "writer", "password": "correct horse"})
            token = sign_in(base)
            for i in range(ROOMS):
                call(base, "POST", "/api/v1/rooms", token, {"name": f"u{i:03d}"})
            stop(proc)
            load_postgres(db) if args.backend == "postgres" else load_sqlite(path)
        proc, base = start(url, log)
        reader = sign_in(base)
        times, first = [], None
        for n in range(args.requests + 10):
            t = time.perf_counter()
            after, rooms = "", []
            while True:
                page = call(base, "GET", f"/api/v1/rooms?joined=true&limit=200{'&after=' + after if after else ''}", reader)
                rooms += page["rooms"]
                after = page["next"] or ""
                if not after:
                    break
            if n >= 10:  # the first reads warm the caches
                times.append((time.perf_counter() - t) * 1000 / 3)
            first = first or rooms
        unread = sorted(r["unread"] for r in first)
        assert len(first) == ROOMS, len(first)
        q = statistics.quantiles(times, n=100)
        print(json.dumps({"backend": args.backend, "rooms": len(first), "messages": ROOMS * PER_ROOM,
                          "unread_min": unread[0], "unread_max": unread[-1], "capped": sum(u == 100 for u in unread),
                          "page_ms_p50": round(statistics.median(times), 2), "page_ms_p95": round(q[94], 2),
                          "page_ms_max": round(max(times), 2), "pages_timed": len(times) * 3}))
        stop(proc)
        if args.backend == "postgres":
            sql = ("SET jit = off; EXPLAIN (ANALYZE, BUFFERS) SELECT rm.room_id, rm.last_read, (SELECT count(*) FROM (SELECT 1 FROM messages m "
                   "WHERE m.room_id = rm.room_id AND m.seq > rm.last_read AND m.user_id <> rm.user_id AND m.kind = 0 "
                   "AND NOT m.deleted LIMIT 100) u) AS unread FROM room_members rm "
                   "WHERE rm.user_id = (SELECT id FROM users WHERE username = 'reader') "
                   "AND rm.room_id = ANY(ARRAY(SELECT id FROM rooms WHERE name LIKE 'u%' ORDER BY name LIMIT 200))")
            plan = psql(db, sql)
            lines = plan.splitlines()
            print("\n".join(l for l in lines if "Execution" in l or "Planning Time" in l or "Buffers" in l and l.startswith("  Buffers")))
            print("\n".join(l for l in lines if "Scan" in l)[:2500])
    finally:
        if args.backend == "postgres" and not (args.keep or args.reuse):
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])


if __name__ == "__main__":
    main()
