//! The deployment files are checked with the tools that exist here, and run
//! where they can be: nginx -t on deploy/nginx.conf, hadolint on the
//! Dockerfile, kubernetes-validate on deploy/k8s, a structural check of the
//! compose file, and the image's HEALTHCHECK command against a real instance.

use std::process::Command;

use crate::support::{ensure_tool, free_port, local_nginx_conf, shipped_server_params, spawn_app, TOOLS_VENV};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run tool");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn nginx_config_passes_nginx_t() {
    ensure_tool("nginx");
    let dir = format!("{}/nginx-t-{}", env!("CARGO_TARGET_TMPDIR"), rand::random::<u32>());
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(format!("{dir}/nginx.conf"), local_nginx_conf(&[free_port(), free_port()], free_port(), &dir)).expect("write");
    let (ok, out) = run(Command::new("nginx").args(["-t", "-p", &dir, "-c", &format!("{dir}/nginx.conf")]));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "nginx -t failed:\n{out}");
}

fn shipped_nginx_conf() -> String {
    std::fs::read_to_string(format!("{ROOT}/deploy/nginx.conf")).expect("deploy/nginx.conf")
}

/// The server lines of each upstream block: (block name, parameters).
fn upstream_servers(conf: &str) -> Vec<(String, String)> {
    let mut block = String::new();
    let mut out = Vec::new();
    for line in conf.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("upstream ").and_then(|l| l.strip_suffix(" {")) {
            block = name.to_string();
        } else if let Some(rest) = line.strip_prefix("server ").filter(|_| !block.is_empty()) {
            let params = rest.trim_end_matches(';').split_once(' ').map(|(_, p)| p.to_string()).unwrap_or_default();
            out.push((block.clone(), params));
        } else if line == "}" {
            block.clear();
        }
    }
    out
}

/// The tests run deploy/nginx.conf itself: the harness may only change
/// addresses, ports and paths, never how the balancer treats its servers.
#[test]
fn the_tests_run_the_shipped_upstream_parameters_unchanged() {
    let shipped = shipped_nginx_conf();
    let local = local_nginx_conf(&[1001, 1002], 2000, "/tmp/x");
    let shipped_servers = upstream_servers(&shipped);
    let local_servers = upstream_servers(&local);
    assert!(!shipped_servers.is_empty());
    for (block, params) in &local_servers {
        let shipped_params: Vec<&String> = shipped_servers.iter().filter(|(b, _)| b == block).map(|(_, p)| p).collect();
        assert!(!shipped_params.is_empty(), "upstream {block} is not in the shipped file");
        assert!(
            shipped_params.iter().all(|p| *p == params),
            "upstream {block}: the tests use {params:?}, deploy/nginx.conf {shipped_params:?}"
        );
    }
    for (block, _) in &shipped_servers {
        assert_eq!(local_servers.iter().filter(|(b, _)| b == block).count(), 2, "upstream {block} gets both test servers");
    }
    // Everything but server lines, listen, pid, logs and temp paths is untouched.
    let keep = |conf: &str| -> Vec<String> {
        conf.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| shipped_server_params(l).is_none() && !l.starts_with("server 127.0.0.1:"))
            .filter(|l| !l.starts_with("listen ") && !l.starts_with("pid ") && !l.starts_with("error_log "))
            .filter(|l| !l.contains("_temp_path "))
            .collect()
    };
    assert_eq!(keep(&local), keep(&shipped));
}

/// WebSocket upgrades never report success to nginx until they close, so
/// passive failure marking on the WebSocket upstream turns restarts into an
/// outage (docs/scaling.md). This keeps it from coming back.
#[test]
fn the_websocket_upstream_never_marks_replicas_failed() {
    let shipped = shipped_nginx_conf();
    let ws_block = shipped
        .lines()
        .skip_while(|l| !l.contains("location /ws"))
        .find_map(|l| l.trim().strip_prefix("proxy_pass http://").map(|u| u.trim_end_matches(';').to_string()))
        .expect("location /ws proxies to an upstream");
    let servers: Vec<(String, String)> = upstream_servers(&shipped).into_iter().filter(|(b, _)| *b == ws_block).collect();
    assert!(!servers.is_empty());
    for (_, params) in servers {
        assert!(params.split_whitespace().any(|p| p == "max_fails=0"), "upstream {ws_block}: {params:?} marks failures");
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = ensure_tool("hadolint");
    let (ok, out) = run(Command::new(hadolint).arg(format!("{ROOT}/Dockerfile")));
    assert!(ok, "hadolint:\n{out}");
}

#[test]
fn kubernetes_manifests_are_valid() {
    let validate = ensure_tool("kubernetes-validate");
    let files: Vec<String> = std::fs::read_dir(format!("{ROOT}/deploy/k8s"))
        .expect("deploy/k8s")
        .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    let (ok, out) = run(Command::new(validate).arg("--strict").args(&files));
    assert!(ok, "kubernetes-validate:\n{out}");
    for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"] {
        assert!(out.contains(&kind.to_lowercase()), "no {kind} validated:\n{out}");
    }
}

#[test]
fn compose_file_describes_three_replicas_behind_nginx() {
    // kubernetes-validate brings PyYAML, in the tools' virtualenv when installed there.
    let validate = ensure_tool("kubernetes-validate");
    let python = if validate.starts_with(TOOLS_VENV) { format!("{TOOLS_VENV}/bin/python3") } else { "python3".to_string() };
    let (ok, out) = run(Command::new(python)
        .arg(format!("{ROOT}/scripts/check-compose.py"))
        .arg(format!("{ROOT}/deploy/docker-compose.yml")));
    assert!(ok, "{out}");
}

#[actix_web::test]
async fn image_healthcheck_command_probes_the_server() {
    let app = spawn_app().await;
    let probe = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("healthcheck")
            .env_clear()
            .env("BIND_ADDR", format!("0.0.0.0:{port}"))
            .status()
            .expect("run healthcheck")
    };
    assert!(probe(app.port).success());
    assert!(!probe(free_port()).success());
}

/// The autoscaling chain as shipped names one metric at every link, and
/// the server exposes it: the HPA's per-pod metric, the prometheus-adapter
/// rule that serves it from Prometheus's series, the Kubernetes scrape job
/// that gives those series their `namespace` and `pod` labels (valid for
/// promtool), and `/metrics`.
#[actix_web::test]
async fn autoscaling_chain_scales_on_a_metric_the_server_exposes() {
    let validate = ensure_tool("kubernetes-validate"); // brings PyYAML
    let python = if validate.starts_with(TOOLS_VENV) { format!("{TOOLS_VENV}/bin/python3") } else { "python3".to_string() };
    let (ok, out) = run(Command::new(python).arg(format!("{ROOT}/scripts/check-autoscaling.py")).arg(ROOT));
    assert!(ok, "the autoscaling chain is broken:\n{out}");
    let chain: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or("")).expect("chain JSON");
    let metric = chain["hpa_metric"].as_str().expect("the HPA's metric").to_string();
    assert_eq!(chain["adapter_serves"][&metric], metric.as_str(), "the adapter serves it from the series of that name: {chain}");
    assert_eq!(chain["hpa_target"]["averageValue"], "20000", "the per-pod target docs/scaling.md states: {chain}");
    let promtool = ensure_tool("promtool");
    let dir = format!("{ROOT}/deploy/prometheus");
    let (mut ok, mut out) = run(Command::new(&promtool).args(["check", "config", "prometheus-k8s.yml"]).current_dir(&dir));
    if !ok && out.contains("field kubernetes_sd_configs not found") {
        // Debian builds Prometheus without Kubernetes discovery: check the
        // rest of the file (relabelling, rules) with the discovery swapped
        // for a static target.
        let shipped = std::fs::read_to_string(format!("{dir}/prometheus-k8s.yml")).expect("prometheus-k8s.yml");
        let swapped =
            shipped.replace("kubernetes_sd_configs:\n      - role: pod", "static_configs:\n      - targets: [\"pod:8080\"]");
        assert_ne!(swapped, shipped, "the scrape job discovers pods");
        let copy = format!("{dir}/.prometheus-k8s.check.yml");
        std::fs::write(&copy, swapped).expect("write the copy");
        (ok, out) = run(Command::new(&promtool).args(["check", "config", ".prometheus-k8s.check.yml"]).current_dir(&dir));
        let _ = std::fs::remove_file(&copy);
    }
    assert!(ok, "promtool check config prometheus-k8s.yml:\n{out}");
    let app = spawn_app().await;
    let mut resp = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    let exposed = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf8");
    assert!(exposed.contains(&format!("# TYPE {metric} gauge")), "/metrics does not expose {metric} as a gauge");
    let scaling = std::fs::read_to_string(format!("{ROOT}/docs/scaling.md")).expect("docs/scaling.md");
    for link in ["deploy/k8s/prometheus-adapter.yaml", "deploy/prometheus/prometheus-k8s.yml", "deploy/k8s/hpa.yaml", &metric] {
        assert!(scaling.contains(link), "docs/scaling.md does not name {link}");
    }
}

#[test]
fn alert_rules_pass_promtool_checks_and_unit_tests() {
    ensure_tool("promtool");
    let dir = format!("{ROOT}/deploy/prometheus");
    let (ok, out) = run(Command::new("promtool").args(["check", "rules", "alerts.yml"]).current_dir(&dir));
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run(Command::new("promtool").args(["test", "rules", "alerts.test.yml"]).current_dir(&dir));
    assert!(ok, "promtool test rules:\n{out}");
    let (ok, out) = run(Command::new("promtool").args(["check", "config", "prometheus.yml"]).current_dir(&dir));
    assert!(ok, "promtool check config:\n{out}");
    for alert in [
        "SwitchboardDeliveryLatencyHigh",
        "SwitchboardHttp5xxRatioHigh",
        "SwitchboardDbPoolSaturated",
        "SwitchboardSlowQueriesRising",
        "SwitchboardCacheHitRatioDropped",
        "SwitchboardBridgeDisconnected",
        "SwitchboardInstanceDown",
        "SwitchboardReadinessFlapping",
    ] {
        let tests = std::fs::read_to_string(format!("{dir}/alerts.test.yml")).expect("tests");
        assert!(tests.contains(&format!("alertname: {alert}")), "{alert} has no promtool unit test");
    }
}

/// Metric names (not recording rules) mentioned in a rules or dashboard file.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        let is_metric =
            ["switchboard_", "process_"].iter().any(|p| word.starts_with(p) && word.len() > p.len()) && !word.contains(':');
        if is_metric {
            let base = ["_bucket", "_sum", "_count"].iter().fold(word.as_str(), |w, s| w.strip_suffix(s).unwrap_or(w));
            names.insert(base.to_string());
        }
        word.clear();
    }
    names
}

#[actix_web::test]
async fn alerts_and_dashboard_use_metrics_the_server_exposes() {
    let app = spawn_app().await;
    let mut resp = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    let exposed = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf8");
    let alerts = std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/alerts.yml")).expect("alerts");
    let dashboard = std::fs::read_to_string(format!("{ROOT}/deploy/grafana/switchboard.json")).expect("dashboard");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(panels.iter().filter(|p| p["type"] == "timeseries").all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())));
    let names = metric_names(&alerts).into_iter().chain(metric_names(&dashboard)).collect::<std::collections::BTreeSet<_>>();
    assert!(names.len() > 20, "{names:?}");
    for name in names {
        // Text exposition names the counter family with its _total suffix.
        assert!(
            exposed.contains(&format!("# TYPE {name} ")),
            "{name} is used by alerts or the dashboard but /metrics does not expose it"
        );
    }
}
