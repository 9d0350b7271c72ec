#!/usr/bin/env python3
"""Structural check of deploy/docker-compose.yml (no Docker engine here):
PostgreSQL and Redis with health checks, three Switchboard replicas wired to
both, nginx in front with deploy/nginx.conf mounted, and traces going from
every replica to an OpenTelemetry Collector whose traces pipeline exports to
the Jaeger service."""
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
# Traces: replicas -> otel-collector (OTLP/HTTP 4318) -> jaeger (OTLP/gRPC 4317).
collector = services.get("otel-collector")
if collector is None:
    errors.append("missing service otel-collector")
else:
    mounted = [str(v) for v in collector.get("volumes", [])]
    config_mount = next((v for v in mounted if v.startswith("./otel-collector.yaml:")), None)
    if config_mount is None:
        errors.append("otel-collector: deploy/otel-collector.yaml is not mounted")
    else:
        target = config_mount.split(":")[1]
        if not any(target in str(arg) for arg in collector.get("command", [])):
            errors.append(f"otel-collector: not started with --config={target}")
        with open(os.path.join(os.path.dirname(path), "otel-collector.yaml")) as f:
            otel = yaml.safe_load(f)
        http = (((otel.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("http") or {}
        if not str(http.get("endpoint", "")).endswith(":4318"):
            errors.append("otel-collector.yaml: no OTLP/HTTP receiver on 4318")
        pipeline = ((otel.get("service") or {}).get("pipelines") or {}).get("traces") or {}
        if "otlp" not in pipeline.get("receivers", []):
            errors.append("otel-collector.yaml: the traces pipeline does not receive OTLP")
        for p in pipeline.get("processors", []):
            if p not in (otel.get("processors") or {}):
                errors.append(f"otel-collector.yaml: processor {p} is used but not defined")
        exporters = otel.get("exporters") or {}
        to_jaeger = [e for e in pipeline.get("exporters", []) if str((exporters.get(e) or {}).get("endpoint", "")).startswith("jaeger:")]
        if not to_jaeger:
            errors.append("otel-collector.yaml: the traces pipeline does not export to the jaeger service")
jaeger = services.get("jaeger")
if jaeger is None:
    errors.append("missing service jaeger")
else:
    if str((jaeger.get("environment") or {}).get("COLLECTOR_OTLP_ENABLED", "")).lower() != "true":
        errors.append("jaeger: COLLECTOR_OTLP_ENABLED must be true")
    if not any(str(p).endswith(":16686") for p in jaeger.get("ports", [])):
        errors.append("jaeger: the UI port 16686 is not published")
for n in replicas:
    env = services[n].get("environment", {})
    endpoint = str(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
    if endpoint != "http://otel-collector:4318":
        errors.append(f"{n}: OTEL_EXPORTER_OTLP_ENDPOINT must be http://otel-collector:4318, got {endpoint!r}")
    if not env.get("OTEL_SERVICE_NAME"):
        errors.append(f"{n}: no OTEL_SERVICE_NAME")
    if "otel-collector" not in services[n].get("depends_on", {}):
        errors.append(f"{n}: does not depend on otel-collector")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"compose ok: {len(replicas)} replicas, traces to otel-collector -> jaeger")
