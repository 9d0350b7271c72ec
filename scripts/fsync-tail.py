#!/usr/bin/env python3
"""This disk's fdatasync tail, with nothing else of ours running.

    python3 scripts/fsync-tail.py [SECONDS]      (default 20)

Writes 4 KiB and calls fdatasync about 1,000 times a second, in place in one
file under target/ (as a WAL reused from its start is written), and prints
the latency percentiles, the slowest call and how many took over 10 and
50 ms. pg_test_fsync gives the median; this gives the stalls a durable
commit can meet (docs/performance.md). The file is removed at the end.
"""
import os, time, sys

n = float(sys.argv[1]) if len(sys.argv) > 1 else 20
os.makedirs('target', exist_ok=True)
path = 'target/fsync-tail.%d' % os.getpid()
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, 4096 * 4096); os.fsync(fd)
buf = os.urandom(4096); lat = []; i = 0
end = time.monotonic() + n
while time.monotonic() < end:
    t = time.monotonic()
    os.pwrite(fd, buf, (i % 4096) * 4096); os.fdatasync(fd)
    d = time.monotonic() - t; lat.append(d * 1000); i += 1
    rest = 0.001 - d
    if rest > 0: time.sleep(rest)
os.close(fd); os.unlink(path)
lat.sort(); q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{len(lat)} fdatasyncs: p50 {q(.5):.3f} p99 {q(.99):.3f} p99.9 {q(.999):.3f} max {lat[-1]:.1f} ms; over 50 ms: {sum(1 for x in lat if x > 50)}, over 10 ms: {sum(1 for x in lat if x > 10)}")
