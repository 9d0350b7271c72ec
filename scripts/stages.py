#!/usr/bin/env python3
"""Where delivery time went, from saved /metrics scrapes.

Reads `switchboard_delivery_stage_seconds` (queue, commit, bus, fanout) from
one or more Prometheus text files (e.g. target/versus/W1x2-switchboard-1-*.prom,
written by scripts/versus.sh) and prints per stage the count, the mean and the
p50 / p99 read off the histogram buckets (linear within a bucket); then the
stalls: per stage how many messages took over 50 and 100 ms, and the bucket
of the slowest commit (`switchboard_writer_commit_seconds`, one per batch),
which tells one slow commit from many.

    scripts/stages.py target/versus/W1x2-switchboard-*.prom
"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r'^switchboard_delivery_stage_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$')
COMMIT = re.compile(r'^switchboard_writer_commit_seconds_bucket\{le="([^"]*)"\} (\S+)$')


def labels(text):
    return dict(re.findall(r'(\w+)="([^"]*)"', text))


def quantile(buckets, q):
    """buckets: sorted [(upper bound, cumulative count)]."""
    total = buckets[-1][1]
    if total == 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 0)
        lower, below = bound, count
    return lower


def main(paths):
    buckets = defaultdict(lambda: defaultdict(float))
    sums, counts = defaultdict(float), defaultdict(float)
    commits = defaultdict(float)
    for path in paths:
        for line in open(path):
            c = COMMIT.match(line.strip())
            if c:
                commits[float(c.group(1))] += float(c.group(2))
                continue
            m = LINE.match(line.strip())
            if not m:
                continue
            kind, lab, value = m.group(1), labels(m.group(2)), float(m.group(3))
            stage = lab.get("stage", "?")
            if kind == "bucket":
                buckets[stage][float(lab["le"])] += value
            elif kind == "sum":
                sums[stage] += value
            else:
                counts[stage] += value
    print("| stage | count | mean ms | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for stage in ["queue", "commit", "bus", "fanout"]:
        if not counts.get(stage):
            continue
        b = sorted(buckets[stage].items())
        mean = sums[stage] / counts[stage] * 1000
        p50, p99 = (quantile(b, q) for q in (0.5, 0.99))
        print(f"| {stage} | {int(counts[stage])} | {mean:.3f} | {p50 * 1000:.3f} | {p99 * 1000:.3f} |")
    print()
    print("| stage | over 50 ms | over 100 ms |")
    print("|---|---|---|")
    for stage in ["queue", "commit", "bus", "fanout"]:
        if not counts.get(stage):
            continue
        b = dict(buckets[stage])
        total = counts[stage]
        over = [int(total - b[t]) if t in b else "?" for t in (0.05, 0.1)]
        print(f"| {stage} | {over[0]} | {over[1]} |")
    if commits:
        b = sorted(commits.items())
        total, lower, slowest = b[-1][1], 0.0, None
        for bound, count in b:
            if count >= total:
                slowest = (lower, bound)
                break
            lower = bound
        if slowest:
            upper = "above" if slowest[1] == float("inf") else f"{slowest[1] * 1000:g} ms"
            print(f"\nslowest commit (of {int(total)} batches): between {slowest[0] * 1000:g} ms and {upper}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
