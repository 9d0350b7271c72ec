#!/usr/bin/env python3
"""The autoscaling chain as shipped, link by link (no cluster here):
the metric the HPA scales on (deploy/k8s/hpa.yaml), the series the
prometheus-adapter rule reads and the name it serves them under
(deploy/k8s/prometheus-adapter.yaml), and the labels the Kubernetes scrape
job gives every series (deploy/prometheus/prometheus-k8s.yml). Prints them
as JSON; exits 1 naming each broken link. tests/api/deploy.rs checks the
metric against the server's /metrics."""
import json
import re
import sys

import yaml

root = sys.argv[1] if len(sys.argv) > 1 else "."
errors = []

with open(f"{root}/deploy/k8s/hpa.yaml") as f:
    hpa = yaml.safe_load(f)
pod_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m.get("type") == "Pods"]
if len(pod_metrics) != 1:
    errors.append(f"the HPA should scale on one per-pod metric, found {pod_metrics}")
targets = [m["pods"]["target"] for m in hpa["spec"]["metrics"] if m.get("type") == "Pods"]

with open(f"{root}/deploy/k8s/prometheus-adapter.yaml") as f:
    adapter = yaml.safe_load(f)
rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
served, series = {}, {}
for rule in rules:
    name = rule.get("name", {}).get("as")
    m = re.match(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*\{(.*)\}\s*$", rule["seriesQuery"])
    if not name or not m:
        errors.append(f"rule without a served name or a plain series query: {rule}")
        continue
    served[name] = m.group(1)
    series[name] = m.group(2)
    overrides = rule.get("resources", {}).get("overrides", {})
    if overrides.get("pod", {}).get("resource") != "pod" or overrides.get("namespace", {}).get("resource") != "namespace":
        errors.append(f"{name}: the rule must map the pod and namespace labels to their resources")
    if not re.match(rf"^\^?{re.escape(m.group(1))}\$?$", rule.get("name", {}).get("matches", "")):
        errors.append(f"{name}: name.matches does not match the series {m.group(1)}")
for metric in pod_metrics:
    if metric not in served:
        errors.append(f"the HPA scales on {metric}, which no adapter rule serves (served: {sorted(served)})")

with open(f"{root}/deploy/prometheus/prometheus-k8s.yml") as f:
    prom = yaml.safe_load(f)
jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
job = jobs.get("switchboard")
labels = set()
if not job:
    errors.append("no scrape job named switchboard in prometheus-k8s.yml")
else:
    labels = {r.get("target_label") for r in job.get("relabel_configs", [])}
    for wanted in ("namespace", "pod"):
        if wanted not in labels:
            errors.append(f"the scrape job does not set the {wanted} label the adapter rule needs")
for name, matchers in series.items():
    if 'job="switchboard"' not in matchers:
        errors.append(f"{name}: the rule should select job=\"switchboard\" (the scrape job)")

print(json.dumps({
    "hpa_metric": pod_metrics[0] if pod_metrics else None,
    "hpa_target": targets[0] if targets else None,
    "adapter_serves": served,
    "scrape_labels": sorted(l for l in labels if l and not l.startswith("__")),
}))
for e in errors:
    print(e, file=sys.stderr)
sys.exit(1 if errors else 0)
