#!/usr/bin/env python3
"""RSS of a running server through sign-in bursts, and after it idles.

Drives one instance over HTTP (standard library only) and reads its RSS
from /proc/<pid>/status:
  round: N users sign up and sign in at once (argon2: 19 MiB and tens of
         ms of CPU each), then post M messages between them;
  burst: B sign-ups and B sign-ins at once;
then idles and reports RSS at the start, the peak while busy, and after
the idle period, per round. Each simulated user names its own address in
X-Forwarded-For (loopback is a trusted proxy), so the per-address limits
do not refuse the run.

  scripts/memory-burst.py --url http://127.0.0.1:8080 --pid PID [--rounds 3] [--idle 60]
"""
import argparse
import json
import threading
import time
import urllib.error
import urllib.request
import uuid


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def call(url, method, path, body=None, token=None, addr="10.0.0.1"):
    req = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Forwarded-For", addr)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            data = r.read()
            return r.status, json.loads(data) if data else None
    except urllib.error.HTTPError as e:
        return e.code, None


def together(fns):
    threads = [threading.Thread(target=f) for f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Peak:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0.0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.05)

    def done(self):
        self.stop = True
        self.t.join()
        return self.peak


def users_round(url, tag, n, messages, room):
    statuses = []

    def one(i):
        name, addr = f"{tag}u{i}", f"10.{i // 250}.{i % 250}.{(hash(tag) % 250) + 1}"
        s, _ = call(url, "POST", "/api/v1/users", {"username": name, "password": "correct horse battery"}, addr=addr)
        s2, v = call(url, "POST", "/api/v1/sessions", {"username": name, "password": "correct horse battery"}, addr=addr)
        statuses.append((s, s2))
        token = (v or {}).get("token")
        if token and messages:
            call(url, "POST", "/api/v1/rooms", {"name": room}, token=token, addr=addr)
            for k in range(messages // n):
                call(url, "POST", f"/api/v1/rooms/{room}/messages", {"body": f"m{k}"}, token=token, addr=addr)

    together([lambda i=i: one(i) for i in range(n)])
    return statuses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--users", type=int, default=45)
    ap.add_argument("--messages", type=int, default=1500)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--idle", type=float, default=60)
    a = ap.parse_args()
    out = {"start_mib": round(rss_mib(a.pid), 1), "rounds": []}
    for r in range(a.rounds):
        tag = uuid.uuid4().hex[:6]
        peak = Peak(a.pid)
        s1 = users_round(a.url, tag, a.users, a.messages, f"mem{tag}")
        s2 = users_round(a.url, tag + "b", a.burst, 0, None)
        p = peak.done()
        time.sleep(a.idle)
        ok = sum(1 for s in s1 + s2 if s == (201, 200))
        out["rounds"].append({"peak_mib": round(p, 1), "after_idle_mib": round(rss_mib(a.pid), 1), "ok": ok, "of": len(s1 + s2)})
        print(json.dumps(out["rounds"][-1]), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
