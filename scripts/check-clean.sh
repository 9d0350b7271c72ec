#!/usr/bin/env bash
# Checks that a test run leaves nothing behind: no process it started still
# runs, and no file outside the repository (and its target/) changed.
#
#   scripts/check-clean.sh before     record the processes and a time mark
#   cargo test --release
#   scripts/check-clean.sh after      fail on leftovers, listing them
#
# Processes: any switchboard, nginx, redis-server, postgres, node or chromium
# process that did not exist before. Files: anything modified since the mark
# under /etc, /usr, /opt, /var, /home, /root and /tmp, except the data
# directories of services that were already running (the tests create their
# databases there, as intended), package-manager caches, the machine's own
# logs and the command runner's own files. Run scripts/test-deps.sh before
# `before`: installing a package changes system files, by design.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=target/check-clean
mkdir -p "$STATE"
PATTERN='switchboard|nginx|redis-server|postgres|node |chromium'

procs() { ps -eo pid=,args= | grep -E "$PATTERN" | grep -v -E 'grep|check-clean' | awk '{print $1}' | sort -n; }

case "${1:-}" in
  before)
    procs > "$STATE/procs"
    touch "$STATE/mark"
    # The running PostgreSQL's data directory (test databases live there).
    psql -h 127.0.0.1 -p 5432 -U postgres -tAc 'show data_directory' 2>/dev/null > "$STATE/pgdata" || : > "$STATE/pgdata"
    echo "[check-clean] recorded $(wc -l < "$STATE/procs") processes"
    ;;
  after)
    [ -f "$STATE/mark" ] || { echo "run '$0 before' first" >&2; exit 2; }
    status=0
    # Watchdogs stop private services within a second of the run's end.
    for _ in $(seq 1 50); do
      left=$(comm -13 "$STATE/procs" <(procs) || true)
      [ -z "$left" ] && break
      sleep 0.2
    done
    if [ -n "$left" ]; then
      echo "[check-clean] processes left behind by the run:"
      for pid in $left; do ps -o pid=,args= -p "$pid" || true; done
      status=1
    fi
    pgdata=$(cat "$STATE/pgdata")
    prune=(-path /proc -o -path /sys -o -path /dev -o -path /run -o -path "$PWD")
    [ -n "$pgdata" ] && prune+=(-o -path "$pgdata")
    # The machine's own services and the tool chains' caches (not the suite's).
    for p in /var/lib/redis /var/lib/mosquitto /var/lib/rabbitmq /var/lib/mysql /var/lib/nats \
             /var/log /var/cache /var/lib/apt /var/lib/dpkg /var/lib/systemd /var/tmp \
             /root/.cargo /root/.rustup /root/.npm /root/.cache /root/.local /root/.pyenv /root/.bash_history; do
      prune+=(-o -path "$p")
    done
    changed=$(find /etc /usr /opt /var /home /root /tmp -xdev \( "${prune[@]}" \) -prune -o -newer "$STATE/mark" -print 2>/dev/null \
      | grep -v -E '^/tmp$|^/tmp/(bash_tool|bash_jobs)' || true)
    if [ -n "$changed" ]; then
      echo "[check-clean] files outside the repository changed by the run:"
      echo "$changed" | head -n 50
      status=1
    fi
    [ $status = 0 ] && echo "[check-clean] nothing left behind"
    exit $status
    ;;
  *) echo "usage: $0 before|after" >&2; exit 2 ;;
esac
