//! What operators and admins see: metric names and bounded label sets,
//! request ids and the request log, and `/api/v1/admin/stats` aggregated
//! across real instances.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::routes::ROUTES;

use crate::support::{eventually, spawn_app, spawn_app_with, spawn_cluster, Mode, TestApp};

/// Every `name{labels} value` line of an exposition, as (name, labels).
fn series(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (head, _value) = l.rsplit_once(' ').expect("sample line");
            match head.split_once('{') {
                None => (head.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").expect("label");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            }
        })
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    let mut resp = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    String::from_utf8(resp.body().limit(16 << 20).await.expect("body").to_vec()).expect("utf8")
}

async fn get_with_id(app: &TestApp, path: &str, token: &str, id: Option<&str>) -> (u16, String) {
    let mut req = app.client.get(app.url(path)).insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(id) = id {
        req = req.insert_header(("X-Request-Id", id));
    }
    let resp = req.send().await.expect("request");
    let echoed = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (resp.status().as_u16(), echoed)
}

#[actix_web::test]
async fn metrics_carry_bounded_labels_and_every_request_is_timed() {
    let app = spawn_app().await;
    let owner = app.register("carol-secret").await;
    let (s, _) = app.post("/api/v1/rooms", Some(&owner), json!({"name": "hushhush", "private": true})).await;
    assert_eq!(s, 201);
    let (s, _) = app.post("/api/v1/rooms/hushhush/messages", Some(&owner), json!({"body": "psst"})).await;
    assert_eq!(s, 201);
    let mut ws = app.ws(&owner).await;
    ws.join("hushhush").await;
    ws.send_n("hushhush", "ws", 3).await;
    // Raw paths with names and queries, and paths no route matches.
    let (s, echoed) = get_with_id(&app, "/api/v1/rooms/hushhush/messages?limit=5", &owner, Some("trace-abc.123")).await;
    assert_eq!((s, echoed.as_str()), (200, "trace-abc.123"), "a sane incoming id is kept");
    let (_, echoed) = get_with_id(&app, "/api/v1/me", &owner, Some("no spaces allowed here")).await;
    assert!(echoed.len() == 32 && echoed.bytes().all(|b| b.is_ascii_hexdigit()), "replaced: {echoed}");
    let (s, fresh) = get_with_id(&app, "/nope/hushhush/carol-secret", &owner, None).await;
    assert_eq!(s, 404);
    assert_eq!(fresh.len(), 32, "every response carries an id");

    let text = scrape(&app).await;
    for name in [
        "switchboard_ws_connections",
        "switchboard_rooms_active",
        "switchboard_messages_total",
        "switchboard_delivery_latency_seconds",
        "switchboard_http_request_duration_seconds",
        "switchboard_db_query_duration_seconds",
        "switchboard_db_pool_connections",
        "switchboard_cache_requests_total",
        "switchboard_bridge_messages_total",
        "switchboard_delivery_stage_seconds",
        // Beyond the contract: what the alerts and /admin use.
        "switchboard_db_slow_queries_total",
        "switchboard_db_pool_max",
        "switchboard_room_mailbox_lag_seconds",
        "switchboard_writer_batch_size",
        "switchboard_writer_commit_seconds",
        "switchboard_writer_queue_depth",
        "switchboard_bridge_reconnects_total",
        "switchboard_bridge_connected",
        "switchboard_slow_consumer_disconnects_total",
        "switchboard_rate_limited_total",
        "switchboard_limit_hits_total",
        "switchboard_http_slow_requests_total",
        "switchboard_ready",
        "switchboard_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(text.lines().any(|l| l.starts_with(&format!("# TYPE {name} "))), "no # TYPE line for {name}");
    }

    let all = series(&text);
    let routes: HashSet<&str> = ROUTES.iter().map(|(_, r, _)| *r).chain(["unmatched"]).collect();
    let mut label_values: HashSet<String> = HashSet::new();
    for (name, labels) in &all {
        for (k, v) in labels {
            assert!(!v.contains("hushhush") && !v.contains("carol"), "{name}: label {k}={v} leaks a name");
            if k == "route" {
                assert!(routes.contains(v.as_str()), "{name}: route label {v} is not a pattern");
            }
            label_values.insert(format!("{k}={v}"));
        }
    }
    // Every stage is exposed from the start; the local ones have samples now.
    for stage in ["queue", "commit", "fanout", "bus"] {
        assert!(
            all.iter().any(
                |(n, l)| n == "switchboard_delivery_stage_seconds_count" && l.get("stage").map(String::as_str) == Some(stage)
            ),
            "stage {stage}"
        );
    }
    for stage in ["queue", "commit", "fanout"] {
        // Socket-side figures are flushed per thread every 100 ms.
        let name = format!(r#"switchboard_delivery_stage_seconds_count{{stage="{stage}"}}"#);
        eventually(Duration::from_secs(5), &format!("3 samples of stage {stage}"), || async {
            (app.metric(&name).await >= 3.0).then_some(())
        })
        .await;
    }
    assert!(all.iter().any(|(n, l)| n == "switchboard_http_request_duration_seconds_count"
        && l.get("route").map(String::as_str) == Some("/api/v1/rooms/{name}/messages")
        && l.get("status").map(String::as_str) == Some("200")));
    // A bounded exposition: every series is known up front or per pattern.
    assert!(all.len() < 4000, "{} series", all.len());
    assert!(label_values.len() < 300, "{} distinct label values", label_values.len());

    // The request log: id, method, route pattern, status, duration; never
    // the raw path, query or token.
    let log = std::fs::read_to_string(&app.log_path).expect("log");
    let http: Vec<&str> = log.lines().filter(|l| l.contains("switchboard::http")).collect();
    assert!(
        http.iter().any(|l| l.contains("trace-abc.123 GET /api/v1/rooms/{name}/messages 200") && l.contains(" ms trace=")),
        "no request line for the traced request:\n{}",
        http.join("\n")
    );
    assert!(http.iter().any(|l| l.contains("GET unmatched 404")));
    for line in &http {
        assert!(!line.contains("hushhush") && !line.contains(&owner) && !line.contains("limit="), "leaky log line: {line}");
    }
}

#[actix_web::test]
async fn slow_requests_are_logged_at_warn_with_their_id() {
    let app = spawn_app_with(&[("SLOW_REQUEST_MS", "0")]).await;
    let token = app.guest("hurried").await;
    let (s, id) = get_with_id(&app, "/api/v1/rooms", &token, Some("slow-one")).await;
    assert_eq!((s, id.as_str()), (200, "slow-one"));
    assert!(app.metric("switchboard_http_slow_requests_total").await >= 1.0);
    let log = std::fs::read_to_string(&app.log_path).expect("log");
    assert!(
        log.lines().any(|l| l.contains("WARN") && l.contains("slow request slow-one: GET /api/v1/rooms 200")),
        "no slow-request warning:\n{log}"
    );
}

async fn stats(app: &TestApp, token: &str) -> Value {
    let (s, v) = app.get("/api/v1/admin/stats", token).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Polls `/api/v1/admin/stats` until `ok` holds (snapshots travel once a second).
async fn stats_until(app: &TestApp, token: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = stats(app, token).await;
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "stats never showed {what}: {v:#}");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn admin_stats_aggregate_every_instance() {
    let mut cluster = spawn_cluster(Mode::Redis(2), &[]).await;
    let (a, b) = (&cluster.apps[0], &cluster.apps[1]);
    let admin = a.register("admin").await;
    let mut readers = Vec::new();
    for (i, app) in [a, b, b].into_iter().enumerate() {
        let token = app.guest(&format!("watcher{i}")).await;
        let mut ws = app.ws(&token).await;
        ws.join("busy").await;
        readers.push(ws);
    }
    let sender = a.guest("talker").await;
    let mut ws = a.ws(&sender).await;
    ws.join("busy").await;
    ws.send_n("busy", "t", 30).await;
    for r in readers.iter_mut() {
        r.collect_until("busy", 0, 30).await;
    }

    // Asked on B, the figures cover A too: the message rate, the connections
    // on both, the busiest room and the merged delivery latencies.
    let v = stats_until(b, &admin, "both instances with A's traffic", |v| {
        let c = &v["cluster"];
        // Readiness is re-checked every 2 s, so it may trail the traffic.
        c["instances"] == 2
            && c["instances_ready"] == 2
            && c["connections"] == 4
            && c["top_rooms"][0]["room"] == "busy"
            && c["top_rooms"][0]["messages_1m"] == 30
            && c["delivery_latency"]["count"].as_u64().is_some_and(|n| n >= 120)
    })
    .await;
    let c = &v["cluster"];
    assert!(c["messages_per_second_1m"].as_f64().expect("a number") > 0.0, "{c}");
    // Where the time went: every stage, on each instance; B heard A's
    // messages over the bus.
    for stage in ["queue", "commit", "fanout", "bus"] {
        assert!(c["delivery_stages"][stage]["count"].is_u64(), "cluster stage {stage}: {}", c["delivery_stages"]);
    }
    assert!(c["delivery_stages"]["commit"]["count"].as_u64().expect("a count") >= 30);
    let on_b = v["instances"].as_array().expect("an array").iter().find(|i| i["instance"] == b.instance.as_str()).expect("B");
    assert!(on_b["delivery_stages"]["bus"]["count"].as_u64().expect("a count") >= 30, "{}", on_b["delivery_stages"]);
    assert!(on_b["delivery_stages"]["bus"]["p50_ms"].as_f64().is_some());
    assert!(c["delivery_latency"]["p99_ms"].as_f64().is_some());
    assert_eq!(c["instances_ready"], 2);
    let ids: HashSet<&str> =
        v["instances"].as_array().expect("an array").iter().map(|i| i["instance"].as_str().expect("a string")).collect();
    assert_eq!(ids, HashSet::from([a.instance.as_str(), b.instance.as_str()]));
    assert_eq!(v["reported_by"], b.instance.as_str());
    assert_eq!(v["instances"][0]["instance"], b.instance.as_str(), "the reporter first");
    let connections: i64 =
        v["instances"].as_array().expect("an array").iter().map(|i| i["connections"].as_i64().expect("an integer")).sum();
    assert_eq!(connections, 4);
    for i in v["instances"].as_array().expect("an array") {
        assert_eq!(i["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(i["bridge"]["state"], "connected");
        assert!(i["uptime_seconds"].is_u64() && i["process"]["rss_bytes"].as_u64().expect("an unsigned integer") > 0, "{i}");
        assert!(i["db"]["pools"][0]["max"].as_u64().expect("an unsigned integer") > 0);
    }
    let routes: Vec<&str> =
        c["http"]["routes"].as_array().expect("an array").iter().map(|r| r["route"].as_str().expect("a string")).collect();
    assert!(routes.contains(&"POST /api/v1/sessions/guest"), "{routes:?}");
    assert!(c["db"]["queries"].as_array().expect("an array").iter().any(|q| q["query"] == "append_messages"));
    let history = v["history"].as_array().expect("an array");
    assert!(!history.is_empty() && history.iter().all(|p| p["t"].is_i64()));
    // `since` trims the history to newer points.
    let last = history.last().expect("a non-empty list")["t"].as_i64().expect("an integer");
    let (_, newer) = b.get(&format!("/api/v1/admin/stats?since={last}"), &admin).await;
    assert!(newer["history"].as_array().expect("an array").iter().all(|p| p["t"].as_i64().expect("an integer") > last));
    let (s, bad) = b.get("/api/v1/admin/stats?since=yesterday", &admin).await;
    assert_eq!((s, bad["error"]["code"].as_str()), (400, Some("bad_request")));

    // An instance that shuts down leaves the figures.
    drop(readers);
    drop(ws);
    cluster.apps[0].terminate().await;
    let b = &cluster.apps[1];
    stats_until(b, &admin, "only B after A's goodbye", |v| v["cluster"]["instances"] == 1).await;
}

#[actix_web::test]
async fn single_instance_stats_describe_itself() {
    let app = spawn_app().await;
    let admin = app.register("admin").await;
    let v = stats_until(&app, &admin, "this instance", |v| v["instances"].as_array().is_some_and(|i| i.len() == 1)).await;
    assert_eq!(v["cluster"]["instances"], 1);
    assert_eq!(v["instances"][0]["instance"], app.instance.as_str());
    assert_eq!(v["instances"][0]["bridge"]["state"], "local");
    assert_eq!(v["windows"], json!({"latency_seconds": 10, "rates_seconds": 60}));
}
