//! Traces over OTLP/HTTP, checked with a real receiver: one message sent on
//! one instance and delivered on another is one trace, across both.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::otlp::{render, Receiver, Span};
use crate::support::services::wait_until;
use crate::support::{shared_redis, spawn_cluster, spawn_cluster_on, Mode};

/// Waits until the receiver holds spans matching `ok`.
async fn spans_where(receiver: &Receiver, what: &str, ok: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let found = wait_until(Duration::from_secs(15), || ok(&receiver.spans()));
    let spans = receiver.spans();
    assert!(
        found,
        "{what}: not received within 15 s; got {} spans:\n{:#?}",
        spans.len(),
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    spans
}

#[actix_rt::test]
async fn a_delivery_across_two_instances_is_one_trace() {
    let receiver = Receiver::start();
    let endpoint = receiver.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "switchboard-test"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let cluster = spawn_cluster(Mode::Redis(2), &env).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let mut alice = a.ws(&a.guest("alice").await).await;
    let mut bob = b.ws(&b.guest("bob").await).await;
    alice.join("traced").await;
    bob.join("traced").await;

    alice.send_json(json!({"type": "send", "room": "traced", "body": "follow me", "client_msg_id": "t-1"})).await;
    let ack = alice.expect("ack").await;
    let seq = ack["seq"].as_i64().expect("seq").to_string();
    let got = bob.expect("message").await;
    assert_eq!(got["body"], "follow me");

    // The send's root span on A, and B's part of the same trace.
    let spans = spans_where(&receiver, "both instances' spans", |spans| {
        let Some(root) = spans.iter().find(|s| s.name == "ws.send" && s.attributes.get("switchboard.seq") == Some(&seq)) else {
            return false;
        };
        let of_trace = spans.iter().filter(|s| s.trace_id == root.trace_id);
        of_trace.clone().any(|s| s.name == "fanout" && s.instance == b.instance)
            && of_trace.clone().any(|s| s.name == "fanout" && s.instance == a.instance)
            && of_trace.clone().any(|s| s.name == "bus.publish")
    })
    .await;
    let root = spans.iter().find(|s| s.name == "ws.send" && s.attributes.get("switchboard.seq") == Some(&seq)).expect("root");
    let trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == root.trace_id).collect();
    println!("one cross-instance delivery, as the receiver decoded it (trace {}):\n{}", root.trace_id, render(&trace));

    let one = |name: &str, instance: &str| -> &Span {
        let found: Vec<&&Span> = trace.iter().filter(|s| s.name == name && s.instance == instance).collect();
        assert_eq!(found.len(), 1, "one {name} span on {instance}: {found:#?}");
        found[0]
    };
    assert_eq!(root.instance, a.instance);
    assert_eq!(root.service, "switchboard-test");
    assert!(root.parent_id.is_empty(), "a WebSocket send starts its trace");
    // On the origin: the stages of switchboard_delivery_stage_seconds under the send.
    let queue = one("queue", &a.instance);
    let commit = one("commit", &a.instance);
    let query = one("db append_messages", &a.instance);
    let ack_span = one("ack", &a.instance);
    let publish = one("bus.publish", &a.instance);
    let fanout_a = one("fanout", &a.instance);
    for child in [queue, commit, ack_span, publish, fanout_a] {
        assert_eq!(child.parent_id, root.span_id, "{} hangs from ws.send", child.name);
        assert!(child.start_ns >= root.start_ns && child.end_ns <= root.end_ns, "{} lies within ws.send", child.name);
    }
    assert_eq!(query.parent_id, commit.span_id, "the query hangs from the commit");
    assert_eq!(query.attributes.get("db.system.name").map(String::as_str), Some("postgresql"));
    assert!(queue.end_ns <= commit.start_ns, "queue ends when the commit starts");
    assert!(commit.end_ns <= fanout_a.start_ns + 1_000, "fan-out starts at the commit's end");
    // On the other instance: its spans continue the trace from the publish.
    let receive = one("bus.receive", &b.instance);
    let fanout_b = one("fanout", &b.instance);
    assert_eq!(receive.parent_id, publish.span_id, "B's bus.receive hangs from A's bus.publish");
    assert_eq!(fanout_b.parent_id, receive.span_id);
    assert_eq!(receive.attributes.get("switchboard.seq"), Some(&seq));
    assert_eq!(fanout_b.attributes.get("switchboard.recipients").map(String::as_str), Some("1"), "{fanout_b:?}");
    assert!(trace.iter().all(|s| !s.error), "nothing failed");
    // No span of this trace is left dangling: every parent was exported.
    let ids: Vec<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    assert!(trace.iter().all(|s| s.parent_id.is_empty() || ids.contains(&s.parent_id.as_str())), "{}", render(&trace));
}

#[actix_rt::test]
async fn unsampled_slow_deliveries_and_requests_are_kept_logged_and_listed() {
    let receiver = Receiver::start();
    let endpoint = receiver.endpoint();
    // Nothing sampled; every delivery and request counts as slow.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("SLOW_DELIVERY_MS", "0"),
        ("SLOW_REQUEST_MS", "0"),
    ];
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    let cluster = spawn_cluster_on(Mode::Redis(1), &shared_redis(), &prefix, &env).await;
    let app = cluster.app(0);
    // Each instance publishes its /admin snapshot on the control channel
    // (about once a second) as it starts serving it: the event to wait for.
    let redis = redis::Client::open(shared_redis()).expect("the shared Redis URL");
    let mut control = redis.get_async_pubsub().await.expect("a Redis subscriber");
    control.subscribe(format!("{prefix}control")).await.expect("subscribed to the control channel");
    let mut carol = app.ws(&app.guest("carol").await).await;
    carol.join("slowpoke").await;
    carol.send_json(json!({"type": "send", "room": "slowpoke", "body": "late", "client_msg_id": "s-1"})).await;
    carol.expect("ack").await;
    carol.expect("message").await;

    let spans = spans_where(&receiver, "the slow delivery's spans", |spans| {
        spans.iter().any(|s| s.name == "ws.send" && s.attributes.get("switchboard.slow").map(String::as_str) == Some("true"))
    })
    .await;
    let root = spans.iter().find(|s| s.name == "ws.send").expect("root");
    assert!(spans.iter().any(|s| s.trace_id == root.trace_id && s.name == "fanout"), "the whole delivery is kept");

    // An HTTP request continuing a caller's trace, with its queries under it.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let admin = app.register("admin").await;
    let resp = app
        .client
        .get(app.url("/api/v1/rooms"))
        .insert_header(("Authorization", format!("Bearer {admin}")))
        .insert_header(("traceparent", format!("00-{caller_trace}-00f067aa0ba902b7-00")))
        .send()
        .await
        .expect("GET rooms");
    assert_eq!(resp.status().as_u16(), 200);
    let spans = spans_where(&receiver, "the request's spans", |spans| {
        spans.iter().any(|s| s.trace_id == caller_trace && s.name == "GET /api/v1/rooms")
    })
    .await;
    let request = spans.iter().find(|s| s.trace_id == caller_trace && s.name == "GET /api/v1/rooms").expect("request span");
    assert_eq!(request.parent_id, "00f067aa0ba902b7", "continues the caller's span");
    assert_eq!(request.attributes.get("http.response.status_code").map(String::as_str), Some("200"));
    assert_eq!(request.attributes.get("http.route").map(String::as_str), Some("/api/v1/rooms"));
    let children: Vec<&Span> = spans.iter().filter(|s| s.parent_id == request.span_id).collect();
    assert!(
        children.iter().any(|s| s.attributes.get("db.system.name").map(String::as_str) == Some("postgresql")),
        "its database queries are its children: {children:#?}"
    );

    // The log lines carry the trace ids.
    let log = std::fs::read_to_string(&app.log_path).expect("server log");
    assert!(log.contains("slow delivery in room") && log.contains(&format!("trace={}", root.trace_id)), "slow delivery logged");
    assert!(
        log.lines().any(|l| l.contains("slow request") && l.contains(&format!("trace={caller_trace}"))),
        "slow request logged"
    );
    // /admin lists them with trace ids and stage times, from the first
    // snapshot published after both (polling would not do: with
    // SLOW_REQUEST_MS=0 every poll is a slow request and pushes entries out).
    let lists_both = |slow: &[Value]| {
        let delivery = slow.iter().find(|o| o["kind"] == "delivery" && o["trace_id"] == root.trace_id.as_str()).cloned();
        let request = slow.iter().any(|o| o["kind"] == "request" && o["trace_id"] == caller_trace);
        delivery.filter(|_| request)
    };
    let mut snapshots = control.on_message();
    let published = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = snapshots.next().await {
            let Ok(envelope) = serde_json::from_slice::<Value>(message.get_payload_bytes()) else { continue };
            let slow = envelope["event"]["snapshot"]["slow"].as_array().cloned().unwrap_or_default();
            if envelope["event"]["kind"] == "stats" && lists_both(&slow).is_some() {
                return;
            }
        }
    })
    .await;
    assert!(published.is_ok(), "a snapshot listing the slow delivery and the slow request within 10 s");
    let (s, v) = app.get("/api/v1/admin/stats", &admin).await;
    assert_eq!(s, 200);
    let delivery = lists_both(v["slow"].as_array().map(Vec::as_slice).unwrap_or_default());
    let ok = match delivery {
        Some(d) => {
            for stage in ["queue", "commit", "fanout"] {
                assert!(d["stages"][stage].is_number(), "stage {stage} in {d}");
            }
            assert_eq!(d["instance"], app.instance.as_str());
            true
        }
        None => false,
    };
    assert!(ok, "/admin lists the slow delivery and the slow request with their trace ids");
}
