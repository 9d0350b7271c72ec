#!/usr/bin/env bash
# The hot path's instruction counts (callgrind), against the committed
# baseline benches/baseline.json. Counts repeat exactly on a noisy machine,
# so a regression shows here before any wall-clock benchmark could see it.
#
#   scripts/perf-gate.sh check     fail when an op costs > 10 % more than the
#                                  baseline, unless the last commit updated
#                                  benches/baseline.json itself
#   scripts/perf-gate.sh update    measure and rewrite benches/baseline.json
#   scripts/perf-gate.sh show      measure and print, change nothing
#
# Each op (benches/instructions.rs) runs at N and 2N iterations; the
# difference over N is the cost of one op, with start-up and set-up gone.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
command -v valgrind >/dev/null || scripts/test-deps.sh valgrind >/dev/null
cargo bench --no-run --bench instructions >/dev/null 2>&1
bin=$(ls -t target/release/deps/instructions-* | grep -Ev '\.(d|dwp)$' | head -n 1)

count() { # op iterations -> instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

declare -A iterations=([parse_send]=2000 [serialise_message]=2000 [sequencer]=2000 [fanout_1000]=20 [cache_hit]=2000 [sqlite_append]=200)
measured=target/perf-gate.json
{
  printf '{'
  sep=
  for op in parse_send serialise_message sequencer fanout_1000 cache_hit sqlite_append; do
    n=${iterations[$op]}
    one=$(count "$op" "$n"); two=$(count "$op" $((2 * n)))
    per=$(( (two - one) / n ))
    printf '%s\n  "%s": %s' "$sep" "$op" "$per"
    sep=,
  done
  printf '\n}\n'
} > "$measured"

case $mode in
  show) cat "$measured" ;;
  update) cp "$measured" benches/baseline.json; echo "[perf-gate] benches/baseline.json updated:"; cat benches/baseline.json ;;
  check)
    updated=no
    if git diff --name-only HEAD~1 HEAD -- benches/baseline.json 2>/dev/null | grep -q .; then updated=yes; fi
    python3 - "$measured" benches/baseline.json "$updated" <<'EOF'
import json, sys
now, base, updated = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3] == "yes"
worse = []
print(f"{'op':<20}{'baseline':>12}{'now':>12}{'change':>9}")
for op, b in base.items():
    n = now.get(op)
    change = (n - b) / b * 100 if n is not None and b else float("nan")
    print(f"{op:<20}{b:>12}{n if n is not None else '-':>12}{change:>+8.1f}%")
    if n is None or n > b * 1.10:
        worse.append(op)
if worse and not updated:
    print(f"[perf-gate] more than 10 % more instructions than benches/baseline.json: {', '.join(worse)}")
    print("[perf-gate] make it cheaper, or update the baseline in the same commit (scripts/perf-gate.sh update) and say why")
    sys.exit(1)
print("[perf-gate] ok" + (" (baseline updated in the last commit)" if worse else ""))
EOF
    ;;
  *) echo "usage: $0 check|update|show" >&2; exit 2 ;;
esac
