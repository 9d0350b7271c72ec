#!/usr/bin/env python3
"""Structural check of deploy/docker-compose.yml (no Docker engine here):
PostgreSQL and Redis with health checks, three Switchboard replicas wired to
both, nginx in front with deploy/nginx.conf mounted."""
import os
import sys

import yaml

path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)
services = doc.get("services", {})
errors = []
for name in ("postgres", "redis", "nginx"):
    if name not in services:
        errors.append(f"missing service {name}")
replicas = [n for n in services if n.startswith("switchboard-")]
if len(replicas) < 3:
    errors.append(f"want 3 switchboard replicas, found {replicas}")
for n in replicas:
    s = services[n]
    env = s.get("environment", {})
    for var in ("DATABASE_URL", "REDIS_URL", "INSTANCE_ID"):
        if var not in env:
            errors.append(f"{n}: no {var}")
    deps = s.get("depends_on", {})
    for dep in ("postgres", "redis"):
        if deps.get(dep, {}).get("condition") != "service_healthy":
            errors.append(f"{n}: must wait for a healthy {dep}")
    if s.get("stop_signal") != "SIGTERM":
        errors.append(f"{n}: stop_signal must be SIGTERM (graceful drain)")
for n in ("postgres", "redis"):
    if "healthcheck" not in services.get(n, {}):
        errors.append(f"{n}: no healthcheck")
mounts = services.get("nginx", {}).get("volumes", [])
if not any(str(v).startswith("./nginx.conf:") for v in mounts):
    errors.append("nginx: deploy/nginx.conf is not mounted")
if not os.path.exists(os.path.join(os.path.dirname(path), "nginx.conf")):
    errors.append("deploy/nginx.conf missing")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"compose ok: {len(replicas)} replicas")
